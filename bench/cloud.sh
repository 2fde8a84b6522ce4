#!/usr/bin/env bash
# Deployed functions on the Google Cloud emulators (make bench-cloud):
#   1. per function (release binaries built as the images build them): binary size,
#      cold start to the first 200 on /healthz (median of 3) and idle RSS, with the
#      cloud backends (Firestore store, Pub/Sub bus, Cloud Tasks, Cloud Storage) and
#      with the embedded defaults;
#   2. webhook ingest of the zapfn-webhook binary: distinct signed payloads (wrk),
#      200 = stored, on SQLite, on the Firestore emulator, and on Firestore with the
#      Pub/Sub relay flushing at the end of each request (the deployed setting).
# Writes bench/out/cloud.md. Needs the emulators (scripts/emulators.sh start) and wrk.
# Settings: BENCH_DURATION (s, 10), BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_PORT (18580).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
PORT=${BENCH_PORT:-18580}
SECRET=zapfn-bench-secret
PHONE_NUMBER_ID=106540352242922
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH=$TARGET/release/zapfn-bench
OUT=$ROOT/bench/out
TMP=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { printf 'bench-cloud: %s\n' "$*" >&2; exit 1; }
val() { sed -n "s/^$1=//p" "$2" | tail -n 1; }
calc() { awk "BEGIN { printf \"%.${2:-0}f\", $1 }"; }
now_ms() { date +%s%3N; }

env_file=$(bash scripts/emulators.sh env 2>/dev/null) || die "start the emulators first: make emulators"
. "$env_file"
command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk"

log "building release binaries (scripts/build-functions.sh) and zapfn-bench"
scripts/build-functions.sh "$TMP/bin" >&2
cargo build --release -p zapfn-bench >&2

RUN=$(date +%s%N)
PROJECT=zapfn-bench-$RUN
# The deployed settings, on the emulators (the resources need not exist to start).
cloud_env=(
    ZAPFN_STORE=firestore GOOGLE_CLOUD_PROJECT="$PROJECT" ZAPFN_BLOBS=gcs ZAPFN_MEDIA_BUCKET=zapfn-bench-$RUN
    ZAPFN_BUS=pubsub ZAPFN_TOPIC_PREFIX="b$RUN-" ZAPFN_TASKS=cloudtasks
    ZAPFN_TASKS_QUEUE="projects/$PROJECT/locations/local/queues/sending"
    ZAPFN_DISPATCH_URL="http://127.0.0.1:9/_tasks/dispatch"
    FIRESTORE_EMULATOR_HOST="$FIRESTORE_EMULATOR_HOST" PUBSUB_EMULATOR_HOST="$PUBSUB_EMULATOR_HOST"
    STORAGE_EMULATOR_HOST="$STORAGE_EMULATOR_HOST" CLOUD_TASKS_EMULATOR_HOST="$CLOUD_TASKS_EMULATOR_HOST"
)

start() { # start BINARY DATA_DIR [VAR=value...]: sets PID; waits for /healthz
    local binary=$1 data=$2
    shift 2
    mkdir -p "$data"
    env -i PATH="$PATH" PORT="$PORT" ZAPFN_DATA_DIR="$data" WA_APP_SECRET="$SECRET" RUST_LOG=warn \
        ZAPFN_LOG_FORMAT=pretty "$@" "$binary" 2>>"$TMP/functions.log" &
    PID=$!
    PIDS+=("$PID")
    "$BENCH" wait --url "http://127.0.0.1:$PORT/healthz" --timeout-ms 30000 \
        || die "$binary did not come up: $(tail -n 5 "$TMP/functions.log")"
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# ---- 1. size, cold start, idle RSS --------------------------------------------------
startup() { # startup BINARY [VAR=value...]: "median_ms rss_mib"
    local binary=$1 times=() rss t0 t1 run
    shift
    for run in 1 2 3; do
        t0=$(now_ms)
        start "$binary" "$TMP/data-$RANDOM" "$@"
        t1=$(now_ms)
        times+=($((t1 - t0)))
        if [ "$run" = 3 ]; then
            sleep 1
            rss=$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status")
        fi
        stop "$PID"
    done
    echo "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p) $rss"
}

log "1/2 per function: size, cold start, idle RSS (embedded and cloud backends)"
rows=()
for binary in "$TMP"/bin/zapfn-*; do
    name=${binary##*/zapfn-}
    size=$(calc "$(stat -c %s "$binary") / 1048576" 1)
    read -r local_ms local_rss < <(startup "$binary")
    read -r cloud_ms cloud_rss < <(startup "$binary" "${cloud_env[@]}")
    rows+=("| $name | $size | $local_ms | $local_rss | $cloud_ms | $cloud_rss |")
    log "$name: $size MB; embedded $local_ms ms, $local_rss MiB; cloud $cloud_ms ms, $cloud_rss MiB"
done

# ---- 2. webhook ingest ------------------------------------------------------------------
COUNT=$((20000 * DURATION))
log "2/2 webhook ingest: generating $COUNT signed webhooks"
"$BENCH" payloads --kind webhook --phone-number-id "$PHONE_NUMBER_ID" --secret "$SECRET" \
    --api-key unused --out "$TMP/webhooks" --count "$COUNT" --parts "$THREADS" >/dev/null

ingest() { # ingest LABEL [VAR=value...]: "rps p50_ms p99_ms ok other"
    local label=$1 out=$TMP/wrk-$1.txt
    shift
    start "$TMP/bin/zapfn-webhook" "$TMP/ingest-$label" "$@"
    timeout -k 5 $((DURATION + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
        -s bench/lua/replay.lua "http://127.0.0.1:$PORT/" -- "$TMP/webhooks" 200 >"$out" 2>&1 \
        || die "wrk failed: $(tail -n 5 "$out")"
    stop "$PID"
    local ok other
    ok=$(val ok "$out")
    other=$(val other "$out")
    echo "$(calc "$ok / ($(val duration_us "$out") / 1e6)") $(calc "$(val p50_us "$out") / 1000" 1) $(calc "$(val p99_us "$out") / 1000" 1) $ok $other"
}

log "ingest on SQLite"
read -r sqlite_rps sqlite_p50 sqlite_p99 sqlite_ok sqlite_other < <(ingest sqlite)
log "ingest on the Firestore emulator (embedded bus)"
read -r fs_rps fs_p50 fs_p99 fs_ok fs_other < <(ingest firestore ZAPFN_STORE=firestore GOOGLE_CLOUD_PROJECT="$PROJECT-ingest" \
    FIRESTORE_EMULATOR_HOST="$FIRESTORE_EMULATOR_HOST")
log "ingest on the Firestore emulator with the Pub/Sub relay (deployed settings)"
# The topics the relay publishes to (without them every forward fails and is retried).
for topic in messages statuses media transcripts; do
    curl -sf -X PUT "http://$PUBSUB_EMULATOR_HOST/v1/projects/$PROJECT/topics/b$RUN-$topic" >/dev/null \
        || die "could not create the Pub/Sub topic b$RUN-$topic on the emulator"
done
read -r cl_rps cl_p50 cl_p99 cl_ok cl_other < <(ingest cloud "${cloud_env[@]}")

mkdir -p "$OUT"
{
    echo "# zapfn on the Google Cloud emulators ($(date -u +%Y-%m-%d), $(nproc) cores, \`bench/cloud.sh\`)"
    echo
    echo "Release binaries as the images build them (\`scripts/build-functions.sh\`). Cold start: process"
    echo "start to the first 200 on \`/healthz\`, median of 3; idle RSS 1 s after that. \"cloud\" = Firestore"
    echo "store, Pub/Sub bus, Cloud Tasks, Cloud Storage on the local emulators (clients connect at start)."
    echo
    echo "| function | binary (MB) | cold start, embedded (ms) | idle RSS, embedded (MiB) | cold start, cloud (ms) | idle RSS, cloud (MiB) |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Webhook ingest, \`zapfn-webhook\` alone, distinct signed payloads, \`wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s\`, 200 = stored:"
    echo
    echo "| store | webhooks/s | p50 (ms) | p99 (ms) | 200s | other | vs SQLite |"
    echo "|---|---|---|---|---|---|---|"
    echo "| SQLite (embedded) | $sqlite_rps | $sqlite_p50 | $sqlite_p99 | $sqlite_ok | $sqlite_other | 1.00× |"
    echo "| Firestore emulator | $fs_rps | $fs_p50 | $fs_p99 | $fs_ok | $fs_other | $(calc "$fs_rps / $sqlite_rps" 3)× |"
    echo "| Firestore emulator + Pub/Sub relay flushed per request | $cl_rps | $cl_p50 | $cl_p99 | $cl_ok | $cl_other | $(calc "$cl_rps / $sqlite_rps" 3)× |"
} >"$OUT/cloud.md"
cat "$OUT/cloud.md"
