#!/usr/bin/env bash
# Replaces the generated section NAME of RELIABILITY.md (between
# `<!-- NAME:begin -->` and `<!-- NAME:end -->`) with standard input.
# Used by `make fuzz` and `make loadtest` to keep their figures current.
set -euo pipefail
name=${1:?usage: reliability-section.sh NAME < content}
file="$(dirname "$0")/../RELIABILITY.md"
grep -q "<!-- $name:begin -->" "$file" || { echo "no <!-- $name:begin --> in $file" >&2; exit 1; }
content=$(mktemp)
trap 'rm -f "$content" "$content.new"' EXIT
cat >"$content"
awk -v name="$name" -v content="$content" '
    $0 == "<!-- " name ":begin -->" { print; while ((getline line < content) > 0) print line; skip = 1; next }
    $0 == "<!-- " name ":end -->" { skip = 0 }
    !skip { print }
' "$file" >"$content.new"
cat "$content.new" >"$file"
echo "RELIABILITY.md: section $name updated" >&2
