#!/usr/bin/env bash
# The deployable binaries, built exactly as the images build them
# (scripts/build-functions.sh), checked and measured: each one starts, answers
# GET /healthz with 200, and stays within the size budgets. Prints, per function:
# binary size, estimated compressed image size, cold start to the first 200
# (median of 3), idle RSS.
#
#   scripts/check-functions.sh [FUNCTION...]      (make deploy-check)
#
# Budgets: binaries at most MAX_BINARY_MB MiB (26: a guard against bloat, kept about
# 1 MiB above the largest binary, media-image; the issue's limit is the image's, and
# every `slim` binary of ≈ 24 MiB gives a ≈ 20 MB image); the compressed `slim` image
# (distroless cc-debian12 layers + the binary's layer, scripts/image-size.sh) at
# most MAX_IMAGE_MB MB (30, 10^6 bytes). The `media` images (Debian slim with
# FFmpeg, Tesseract, Poppler: infra/functions.tf) have no image budget and are not
# estimated. IMAGE_SIZE=0 skips the estimate (it downloads the base's Debian
# packages once a day).
set -euo pipefail
cd "$(dirname "$0")/.."
max_mb=${MAX_BINARY_MB:-26}
max_image_mb=${MAX_IMAGE_MB:-30}
media=$(awk '/^  function_specs = \{/ { inside = 1; next } inside && /^  \}/ { inside = 0 }
    inside && /^    [a-z-]+ = \{/ { name = $1 } inside && /variant *= *"media"/ { print name }' infra/functions.tf)
out=$(mktemp -d)
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$out" "$work"; }
trap cleanup EXIT
scripts/build-functions.sh "$out" "$@" >&2
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

printf '%-16s %10s %11s %14s %10s\n' function "size (MiB)" "image (MB)" "cold start ms" "idle RSS"
failed=0
for binary in "$out"/zapfn-*; do
    function=${binary##*/zapfn-}
    size=$(stat -c %s "$binary")
    image=media
    if ! grep -qx "$function" <<<"$media"; then
        if [ "${IMAGE_SIZE:-1}" = 0 ]; then
            image=–
        else
            image_bytes=$(scripts/image-size.sh image "$binary")
            image=$(awk "BEGIN { printf \"%.1f\", $image_bytes / 1e6 }")
            if [ "$image_bytes" -gt $((max_image_mb * 1000000)) ]; then
                echo "check-functions: the $function image is $image MB compressed, over the ${max_image_mb} MB budget" >&2
                failed=1
            fi
        fi
    fi
    starts=()
    rss=""
    for run in 1 2 3; do
        port=$(free_port)
        data="$work/$function-$run"
        t0=$(now_ms)
        PORT=$port ZAPFN_DATA_DIR=$data ZAPFN_LOG_FORMAT=pretty RUST_LOG=warn "$binary" >"$work/$function.log" 2>&1 &
        pid=$!
        pids+=("$pid")
        ok=""
        for _ in $(seq 1 500); do
            if curl -fs -o /dev/null "http://127.0.0.1:$port/healthz"; then ok=1; break; fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.01
        done
        t1=$(now_ms)
        if [ -z "$ok" ]; then
            echo "check-functions: $function did not answer /healthz with 200:" >&2
            cat "$work/$function.log" >&2
            failed=1
            kill "$pid" 2>/dev/null || true
            break
        fi
        starts+=($((t1 - t0)))
        if [ "$run" = 3 ]; then
            sleep 1
            rss=$(awk '/VmRSS/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$pid/status")
        fi
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
    done
    median=$(printf '%s\n' "${starts[@]:-0}" | sort -n | sed -n 2p)
    printf '%-16s %10.1f %11s %14s %10s\n' "$function" "$(echo "$size / 1048576" | bc -l)" "$image" "${median:-–}" "$rss"
    if [ "$size" -gt $((max_mb * 1048576)) ]; then
        echo "check-functions: $function is $((size / 1048576)) MiB, over the ${max_mb} MiB budget" >&2
        failed=1
    fi
done
exit $failed
