#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets and runs each for FUZZ_SECONDS
# (default 60) from the committed corpus (fuzz/corpus/<target>, seeded from
# fixtures/ by fuzz/seed.py). New inputs go to a scratch directory, so the
# committed corpus only changes on purpose (`FUZZ_MERGE=1` folds them in).
# A crash fails the run: its input is kept in fuzz/artifacts/<target>/. Once
# fixed, copy it to fuzz/corpus/<target>/regression-<what> (the WhatsApp
# targets' corpora are replayed by `cargo test -p zapfn-whatsapp --test
# fuzz_corpus`) and add a unit test next to the fix.
#
# Needs cargo-fuzz (installed from crates.io when missing) and a C++ compiler.
# Only the stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use
# the -Z flags libFuzzer builds take.
#
# Settings: FUZZ_SECONDS, FUZZ_TARGETS (space-separated, default all),
# FUZZ_MERGE=1, FUZZ_REPORT=0 (do not rewrite RELIABILITY.md), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"webhook_parse signature send_validate media_sniff"}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked >&2
fi
echo "== building fuzz targets" >&2
cargo fuzz build -O >&2

scratch=$(mktemp -d "${TMPDIR:-/tmp}/zapfn-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
rows=()
failed=0
for target in $TARGETS; do
    mkdir -p "$scratch/$target" "artifacts/$target"
    echo "== fuzzing $target for ${SECONDS_EACH}s" >&2
    log=$scratch/$target.log
    status=0
    cargo fuzz run -O "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    corpus=$(ls "corpus/$target" | wc -l)
    found=$(ls "$scratch/$target" | wc -l)
    if [[ $status -ne 0 ]]; then
        failed=1
        crash=$(grep -o "artifacts/$target/[a-z-]*[0-9a-f]*" "$log" | tail -n 1 || true)
        echo "fuzz: $target FAILED (exit $status); input: fuzz/${crash:-artifacts/$target/}" >&2
        grep -E "panicked|ERROR|SUMMARY" "$log" | head -n 5 >&2 || true
        rows+=("| \`$target\` | ${SECONDS_EACH} s | ${runs:-?} | $corpus + $found new | **crash: fuzz/${crash:-?}** |")
    else
        echo "fuzz: $target: ${runs:-?} executions, no crash" >&2
        rows+=("| \`$target\` | ${SECONDS_EACH} s | ${runs:-?} | $corpus + $found new | none |")
    fi
    if [[ ${FUZZ_MERGE:-0} == 1 && $found -gt 0 ]]; then
        # Keeps only the new inputs that reach code the corpus did not.
        cargo fuzz run -O "$target" "corpus/$target" "$scratch/$target" -- -merge=1 >/dev/null 2>&1 || true
    fi
done

table=$(printf '%s\n' \
    "Last run: \`make fuzz\` (FUZZ_SECONDS=$SECONDS_EACH), $(date -u +%Y-%m-%d), $(nproc) cores, libFuzzer with AddressSanitizer." \
    "" \
    "| target | time | executions | corpus (committed + found) | crashes |" \
    "|---|---|---|---|---|" \
    "${rows[@]}")
printf '%s\n' "$table"
if [[ ${FUZZ_REPORT:-1} == 1 ]]; then
    bash ../scripts/reliability-section.sh fuzz <<<"$table"
fi
exit $failed
