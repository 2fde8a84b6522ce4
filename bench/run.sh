#!/usr/bin/env bash
# `make bench`: zapfn's performance figures next to a bare axum hello-world,
# all measured in one run on this machine (shared machines are noisy: compare
# the ratios, not the absolute numbers, across runs).
#
#   1. hello-world:       wrk GET /                       (the baseline); then the
#                         webhook step's signed POSTs, each body read and answered
#                         200 (the same client work as step 2, no webhook handling);
#                         then step 3's open loop (the machine's own latency floor)
#   2. webhook ingest:    wrk POST /webhook, distinct signed payloads; then
#                         rows in `messages` checked against the 200s
#   3. webhook latency:   open-loop 5,000 req/s (zapfn-bench rate), p50..max
#   4. send API:          wrk POST /v1/{id}/messages, distinct template sends
#   5. dispatch:          sandbox-accepted sends/s with WA_RATE_LIMIT=1000,
#                         counted where the sandbox received them while the store held a backlog
#   6. startup:           cold start to first /healthz 200, idle RSS
#   7. media:             thumbnail of a ≈ 5 MB JPEG, OCR per image, real-time
#                         factor of transcribing a 30 s voice note (zapfn-bench media)
#
# Each zapfn run gets a fresh data directory. Results: a markdown table on
# stdout and in bench/out/results.md. Everything listens on 127.0.0.1 only,
# every wait is bounded, and every process started here is killed on exit.
#
# Settings (environment): BENCH_ONLY=webhook runs steps 1-3 only (for quick
# iterations on ingest), BENCH_DURATION (s, default 10), BENCH_THREADS (2),
# BENCH_CONNECTIONS (32), BENCH_RATE (5000 req/s for step 3),
# BENCH_MAX_RATE (60000: payloads generated per second of wrk load),
# BENCH_PORT (18480), BENCH_HELLO_PORT (18481), CARGO_TARGET_DIR.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-10}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
RATE=${BENCH_RATE:-5000}
MAX_RATE=${BENCH_MAX_RATE:-60000}
PORT=${BENCH_PORT:-18480}
HELLO_PORT=${BENCH_HELLO_PORT:-18481}
DISPATCH_LIMIT=1000
ONLY=${BENCH_ONLY:-}
[[ -z $ONLY || $ONLY == webhook ]] || { echo "bench: BENCH_ONLY must be empty or webhook" >&2; exit 2; }
SECRET=zapfn-bench-secret
API_KEY=zapfn-bench-key-$RANDOM$RANDOM
PHONE_NUMBER_ID=106540352242922
OUT=$ROOT/bench/out
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/zapfn
BENCH=$TARGET/release/zapfn-bench
WRK=(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s)

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---- processes: everything started is tracked and killed on exit ----------
PIDS=()
TMP=
stop() { # stop PID: SIGTERM, up to 10 s grace, then SIGKILL; forget it
    local pid=$1 i rest=()
    for i in "${PIDS[@]}"; do [[ $i == "$pid" ]] || rest+=("$i"); done
    PIDS=("${rest[@]}")
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop "$pid"; done
    [[ -n $TMP ]] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- prerequisites ----------------------------------------------------------
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo
    timeout 300 $SUDO apt-get install -y wrk >&2 || die "wrk is missing and apt-get install -y wrk failed"
fi
log "building (release)"
cargo build --release -p zapfn -p zapfn-bench >&2
[[ -x $BIN && -x $BENCH ]] || die "no $BIN or $BENCH after the build (is CARGO_TARGET_DIR set as for the build?)"

mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/zapfn-bench.XXXXXX")

val() { sed -n "s/^$1=//p" "$2" | tail -n 1; }           # val NAME FILE
calc() { awk "BEGIN { printf \"%.${2:-0}f\", $1 }"; }     # calc EXPR [DECIMALS]
num() { printf '%s' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }     # 12345 -> 12,345
verdict() { if awk "BEGIN { exit !($1) }"; then echo pass; else echo "**FAIL**"; fi; }

for port in "$PORT" "$HELLO_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is in use (set BENCH_PORT / BENCH_HELLO_PORT)"
    fi
done

drained() { # drained: waits (up to 300 s) until zapfn's webhook journal is stored; prints the ms it took
    local start i
    start=$(date +%s%3N)
    for ((i = 0; i < 3000; i++)); do
        curl -sf "http://127.0.0.1:$PORT/healthz" | grep -q '"webhook_backlog_bytes":0[,}]' && break
        sleep 0.1
    done
    echo $(($(date +%s%3N) - start))
}

start_zapfn() { # start_zapfn NAME [VAR=value ...]: fresh data dir; sets ZAPFN_PID and DB
    local dir=$TMP/$1
    shift
    mkdir -p "$dir"
    env -i PATH="$PATH" PORT="$PORT" ZAPFN_DATA_DIR="$dir" WA_APP_SECRET="$SECRET" \
        ZAPFN_API_KEY="$API_KEY" WA_PHONE_NUMBER_ID="$PHONE_NUMBER_ID" RUST_LOG=warn \
        ZAPFN_SQLITE_SYNC="${ZAPFN_SQLITE_SYNC:-}" ZAPFN_WEBHOOK_JOURNAL="${ZAPFN_WEBHOOK_JOURNAL:-}" \
        "$@" "$BIN" dev 2>>"$TMP/zapfn.log" &
    ZAPFN_PID=$!
    PIDS+=("$ZAPFN_PID")
    DB=$dir/zapfn.db
    "$BENCH" wait --url "http://127.0.0.1:$PORT/healthz" --timeout-ms 15000 \
        || die "zapfn dev did not come up; log: $(tail -n 5 "$TMP/zapfn.log")"
    kill -0 "$ZAPFN_PID" 2>/dev/null || die "zapfn dev exited; is port $PORT taken?"
}

cpu_ticks() { # cpu_ticks PID: "thread-name ticks" per thread of PID (utime + stime)
    local task line comm
    for task in /proc/"$1"/task/*; do
        line=$(cat "$task/stat" 2>/dev/null) || continue
        comm=$(cat "$task/comm" 2>/dev/null) || continue
        awk -v comm="${comm// /_}" '{ sub(/^.*\) /, ""); print comm, $12 + $13 }' <<<"$line"
    done
}
cpu_share() { # cpu_share BEFORE AFTER SECONDS: "name N%, ..." of one core, busiest first
    awk -v secs="$3" -v hz="$(getconf CLK_TCK)" 'NR == FNR { before[$1] += $2; next } { after[$1] += $2 }
        END { for (n in after) { p = 100 * (after[n] - before[n]) / hz / secs; if (p >= 1) printf "%s %.0f\n", n, p } }' \
        "$1" "$2" | sort -k2 -nr | awk '{ printf "%s%s %s%%", (NR > 1 ? ", " : ""), $1, $2 }'
}

run_wrk() { # run_wrk OUTFILE wrk-args...: bounded, output kept for val
    local out=$1
    shift
    timeout -k 5 $((DURATION + 60)) "${WRK[@]}" "$@" >"$out" 2>&1 || die "wrk failed: $(tail -n 5 "$out")"
    grep -q '^duration_us=' "$out" || die "wrk printed no summary: $(tail -n 5 "$out")"
}

# ---- payloads: every request distinct, enough that none repeats ---------------
WRK_COUNT=$((MAX_RATE * DURATION))
RATE_COUNT=$((RATE * DURATION))
log "generating $(num "$WRK_COUNT") signed webhooks, $(num "$RATE_COUNT") more for the fixed rate, $(num "$WRK_COUNT") sends"
payloads() { "$BENCH" payloads --phone-number-id "$PHONE_NUMBER_ID" --secret "$SECRET" --api-key "$API_KEY" "$@" >/dev/null; }
payloads --kind webhook --out "$TMP/webhooks" --count "$WRK_COUNT" --parts "$THREADS"
payloads --kind webhook --out "$TMP/rate" --count "$RATE_COUNT"
[[ -n $ONLY ]] || payloads --kind send --out "$TMP/sends" --count "$WRK_COUNT" --parts "$THREADS"

# ---- 1. hello-world ---------------------------------------------------------------
log "1/6 hello-world baseline: ${WRK[*]}"
"$BENCH" hello --port "$HELLO_PORT" &
HELLO_PID=$!
PIDS+=("$HELLO_PID")
"$BENCH" wait --url "http://127.0.0.1:$HELLO_PORT/" --timeout-ms 10000
run_wrk "$TMP/hello.txt" -s bench/lua/hello.lua "http://127.0.0.1:$HELLO_PORT/"
log "1/6 hello-world, the webhook step's signed POSTs: ${WRK[*]} (body read, 200)"
run_wrk "$TMP/hello_post.txt" -s bench/lua/replay.lua "http://127.0.0.1:$HELLO_PORT/" -- "$TMP/webhooks"
log "1/6 hello-world latency: open loop, $RATE req/s for ${DURATION}s over $CONNECTIONS connections (step 3's requests)"
HR=$TMP/hello_rate.txt
timeout -k 5 $((DURATION + 60)) "$BENCH" rate --url "http://127.0.0.1:$HELLO_PORT/webhook" --rps "$RATE" \
    --duration "$DURATION" --connections "$CONNECTIONS" --payloads "$TMP/rate.0" >"$HR"
stop "$HELLO_PID"
H=$TMP/hello.txt
HELLO_OK=$(($(val requests "$H") - $(val errors_status "$H")))
HELLO_RPS=$(calc "$HELLO_OK / ($(val duration_us "$H") / 1e6)")
HP=$TMP/hello_post.txt
HELLO_POST_RPS=$(calc "$(val ok "$HP") / ($(val duration_us "$HP") / 1e6)")
[[ $(val other "$HP") -eq 0 ]] || die "the hello-world answered $(val other "$HP") webhook POSTs with other than 2xx"
[[ $(val errors "$HR") -eq 0 ]] || die "the hello-world's open loop had $(val errors "$HR") errors"

# ---- 2. webhook ingest ---------------------------------------------------------------
log "2/6 webhook ingest: ${WRK[*]}, distinct signed payloads"
start_zapfn webhook
W=$TMP/webhook.txt
cpu_ticks "$ZAPFN_PID" >"$TMP/cpu.before"
run_wrk "$W" -s bench/lua/replay.lua "http://127.0.0.1:$PORT/" -- "$TMP/webhooks"
cpu_ticks "$ZAPFN_PID" >"$TMP/cpu.after"
W_DRAIN_MS=$(drained)
W_ROWS=$("$BENCH" count --db "$DB" --table messages | sed -n 's/^rows=//p')
W_OUTBOX=$("$BENCH" count --db "$DB" --table outbox | sed -n 's/^rows=//p')
stop "$ZAPFN_PID"
W_CPU=$(cpu_share "$TMP/cpu.before" "$TMP/cpu.after" "$(calc "$(val duration_us "$W") / 1e6" 3)")
W_OK=$(val ok "$W")
W_OTHER=$(val other "$W")
W_UNANSWERED=$(($(val sent "$W") - W_OK - W_OTHER))   # in flight when wrk stopped
W_RPS=$(calc "$W_OK / ($(val duration_us "$W") / 1e6)")
W_RATIO=$(calc "$W_RPS / $HELLO_RPS" 2)
# Rows in SQLite over the load plus the time the indexer took to store the journal's rest.
W_STORED_RPS=$(calc "$W_ROWS / ($(val duration_us "$W") / 1e6 + $W_DRAIN_MS / 1000)")
W_REPEATS=$(val repeats "$W")
[[ $W_REPEATS -eq 0 ]] || log "warning: webhooks wrapped around $W_REPEATS times (raise BENCH_MAX_RATE)"

# ---- 3. webhook latency at a fixed rate -------------------------------------------------
log "3/6 webhook latency: open loop, $RATE req/s for ${DURATION}s over $CONNECTIONS connections"
start_zapfn rate
R=$TMP/rate.txt
timeout -k 5 $((DURATION + 60)) "$BENCH" rate --url "http://127.0.0.1:$PORT/webhook" --rps "$RATE" \
    --duration "$DURATION" --connections "$CONNECTIONS" --payloads "$TMP/rate.0" >"$R"
drained >/dev/null
R_ROWS=$("$BENCH" count --db "$DB" --table messages | sed -n 's/^rows=//p')
stop "$ZAPFN_PID"

# ---- 4. send API, 5. dispatch ------------------------------------------------------------
if [[ -z $ONLY ]]; then
# The dispatch rate: sends the sandbox received while the store held a backlog,
# from 2 s into the send run (once the limiter's one-second burst is spent and
# a backlog has formed) until the queue drains, at most DURATION + 10 s.
log "4/6 send API: ${WRK[*]}, distinct template sends (WA_RATE_LIMIT=$DISPATCH_LIMIT)"
log "5/6 dispatch: sandbox-accepted sends/s, from 2 s into the send run until the queue drains"
start_zapfn send WA_RATE_LIMIT=$DISPATCH_LIMIT
S=$TMP/send.txt
D=$TMP/dispatch.txt
"$BENCH" dispatch --db "$DB" --url "http://127.0.0.1:$PORT" --skip-ms 2000 --window-ms $(((DURATION + 10) * 1000)) --poll-ms 500 >"$D" &
DISPATCH_PID=$!
PIDS+=("$DISPATCH_PID")
run_wrk "$S" -s bench/lua/replay.lua "http://127.0.0.1:$PORT/" -- "$TMP/sends"
S_ROWS=$("$BENCH" count --db "$DB" --table messages | sed -n 's/^rows=//p')
wait "$DISPATCH_PID" || die "zapfn-bench dispatch failed"
stop "$DISPATCH_PID"
stop "$ZAPFN_PID"
S_OK=$(val ok "$S")
S_OTHER=$(val other "$S")
S_UNANSWERED=$(($(val sent "$S") - S_OK - S_OTHER))
S_RPS=$(calc "$S_OK / ($(val duration_us "$S") / 1e6)")
S_RATIO=$(calc "$S_RPS / $HELLO_RPS" 2)
S_REPEATS=$(val repeats "$S")
[[ $S_REPEATS -eq 0 ]] || log "warning: sends wrapped around $S_REPEATS times (raise BENCH_MAX_RATE)"
D_RPS=$(val dispatch_rps "$D")
D_SPAN_MS=$(val span_ms "$D")
D_NOTE="over $(calc "$D_SPAN_MS / 1000" 1) s with a backlog, from 2 s into the send run"
if [[ $(val drained "$D") == 1 ]]; then D_NOTE="$D_NOTE until it drained"; else D_NOTE="$D_NOTE (not drained)"; fi
[[ $(val failed "$D") == 0 ]] || D_NOTE="$D_NOTE; $(val failed "$D") failed"

# ---- 6. startup ---------------------------------------------------------------------------
log "6/6 cold start (median of 5) and idle RSS"
U=$TMP/startup.txt
env -i PATH="$PATH" RUST_LOG=warn WA_APP_SECRET="$SECRET" timeout 120 "$BENCH" startup --binary "$BIN" --runs 5 >"$U"
RSS_MIB=$(calc "$(val idle_rss_kib "$U") / 1024" 1)
COLD_MS=$(val cold_start_ms "$U")

# ---- 7. media ------------------------------------------------------------------------------
log "media: 320 px WebP thumbnail of a ≈ 5 MB JPEG, OCR per image, transcription of a 30 s voice note (median of 5)"
M=$TMP/media.txt
timeout 600 "$BENCH" media --runs 5 >"$M" || die "zapfn-bench media failed (are ffmpeg, tesseract, pocketsphinx, espeak-ng and ImageMagick installed?)"
fi

# ---- results -----------------------------------------------------------------------------------
ms() { calc "$1 / 1000" 2; }
W_CONSISTENT=$(verdict "$W_OK <= $W_ROWS && $W_ROWS <= $W_OK + $W_UNANSWERED && $W_OTHER == 0 && $W_REPEATS == 0")
[[ -n $ONLY ]] || S_CONSISTENT=$(verdict "$S_OK <= $S_ROWS && $S_ROWS <= $S_OK + $S_UNANSWERED && $S_OTHER == 0 && $S_REPEATS == 0")
R_OK=$(val ok "$R")
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT (uncommitted changes)"

RESULTS=$OUT/results.md
{
    echo "# zapfn benchmarks"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $COMMIT"
    echo "- machine: $(nproc) CPUs, ${CPU:-unknown CPU}, $(uname -sr); load, client and server share it"
    echo "- load: \`wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s\` keep-alive on 127.0.0.1; zapfn dev with RUST_LOG=warn, SQLite synchronous=${ZAPFN_SQLITE_SYNC:-normal}, a fresh data dir per step"
    echo
    echo "| Figure | Result | Target | vs hello-world | |"
    echo "|---|---|---|---|---|"
    echo "| Bare axum hello-world, \`GET /\` | $(num "$HELLO_RPS") req/s; p50 $(ms "$(val p50_us "$H")") ms, p99 $(ms "$(val p99_us "$H")") ms | baseline | 1.00× | |"
    echo "| Bare axum hello-world, the webhook step's signed POSTs (body read, 200) | $(num "$HELLO_POST_RPS") req/s; p50 $(ms "$(val p50_us "$HP")") ms, p99 $(ms "$(val p99_us "$HP")") ms | — | $(calc "$HELLO_POST_RPS / $HELLO_RPS" 2)× | |"
    echo "| Bare axum hello-world, open loop at $(num "$RATE") req/s, step 3's requests (body read, 200) | p50 $(val p50_ms "$HR") ms, p90 $(val p90_ms "$HR") ms, p99 $(val p99_ms "$HR") ms, max $(val max_ms "$HR") ms | — | | |"
    echo "| Webhook ingest, distinct signed payloads, 200 = stored (journaled) | $(num "$W_RPS") webhooks/s; p50 $(ms "$(val p50_us "$W")") ms, p99 $(ms "$(val p99_us "$W")") ms | ≥ 40,000/s | ${W_RATIO}× (target ≈ 0.5×); $(calc "$W_RPS / $HELLO_POST_RPS" 2)× of the same POSTs to hello-world | $(verdict "$W_RPS >= 40000") |"
    echo "| … of which stored in SQLite by the indexer | $(num "$W_ROWS") rows in $(calc "$(val duration_us "$W") / 1e6" 1) s of load + $(calc "$W_DRAIN_MS / 1000" 1) s after it: $(num "$W_STORED_RPS") webhooks/s sustained | — | $(calc "$W_STORED_RPS / $HELLO_RPS" 2)× | |"
    echo "| Webhook rows in \`messages\` vs 200s | $(num "$W_ROWS") rows, $(num "$W_OK") × 200, $W_OTHER other, $W_UNANSWERED unanswered at wrk stop, $W_REPEATS repeats | rows = 200s (+ ≤ unanswered) | | $W_CONSISTENT |"
    echo "| Webhook latency, open loop at $(num "$RATE") req/s, $CONNECTIONS conns | p50 $(val p50_ms "$R") ms, p90 $(val p90_ms "$R") ms, **p99 $(val p99_ms "$R") ms**, max $(val max_ms "$R") ms; $(num "$(val achieved_rps "$R")") req/s achieved, $(val errors "$R") errors, $(num "$R_ROWS") rows for $(num "$R_OK") × 200 | p99 < 5 ms | | $(verdict "$(val p99_ms "$R") < 5 && $(val errors "$R") == 0 && $R_ROWS == $R_OK") |"
    if [[ -z $ONLY ]]; then
        echo "| Send API, distinct template sends, 202 = queued | $(num "$S_RPS") sends/s; p50 $(ms "$(val p50_us "$S")") ms, p99 $(ms "$(val p99_us "$S")") ms; $(num "$S_ROWS") rows for $(num "$S_OK") × 202, $S_OTHER other | — | ${S_RATIO}× | $S_CONSISTENT |"
        echo "| Dispatch end to end (sandbox-accepted), WA_RATE_LIMIT=$DISPATCH_LIMIT | $(num "$D_RPS") sends/s $D_NOTE | = $DISPATCH_LIMIT/s (the limit) | | $(verdict "$D_RPS >= 0.95 * $DISPATCH_LIMIT && $D_RPS <= 1.05 * $DISPATCH_LIMIT && $D_SPAN_MS >= 1000") |"
        echo "| \`zapfn dev\` idle RSS (2 s after start) | $RSS_MIB MiB | < 30 MiB | | $(verdict "$RSS_MIB < 30") |"
        echo "| Cold start to first 200 on /healthz (fresh data dir) | $COLD_MS ms median ($(val cold_start_all_ms "$U") ms) | < 20 ms | | $(verdict "$COLD_MS < 20") |"
        echo "| Thumbnail: decode a $(calc "$(val photo_bytes "$M") / 1048576" 1) MiB 4000×3000 JPEG, 320 px WebP | $(val thumbnail_ms "$M") ms | — | | |"
        echo "| OCR (Tesseract por+eng, one thread) per image | $(val ocr_sign_ms "$M") ms for a 1200×400 sign; $(val ocr_photo_ms "$M") ms for the 4000×3000 photo | — | | |"
        echo "| Transcription of a $(val voice_seconds "$M") s voice note (FFmpeg to 16 kHz + PocketSphinx) | real-time factor $(val transcription_rtf "$M") ($(val voice_convert_ms "$M") + $(val voice_recognise_ms "$M") ms) | < 1 | | $(verdict "$(val transcription_rtf "$M") < 1") |"
    fi
    echo
    echo "During the webhook run, zapfn's threads used (% of one core): $W_CPU; $(num "$W_OUTBOX") outbox events were still waiting for consumers at the end."
} >"$RESULTS"
cat "$RESULTS"
log "written to ${RESULTS#"$ROOT"/}"
