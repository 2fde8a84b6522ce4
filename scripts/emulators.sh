#!/usr/bin/env bash
# Google Cloud emulators on 127.0.0.1, each in its own process group:
#   Firestore (8787), Pub/Sub (8085), Cloud Storage (9023), Cloud Tasks (9090),
#   and PostgreSQL when scripts/postgres.sh exists.
#
#   scripts/emulators.sh start   # start what is not running, wait until ready, write the env file
#   scripts/emulators.sh env     # print the env file's path (source it: `. "$(scripts/emulators.sh env)"`)
#   scripts/emulators.sh stop    # stop every emulator this script started
#
# State (pids, logs, env file) lives in $ZAPFN_EMULATORS_DIR (default ~/.cache/zapfn-emulators).
# The Python emulators are installed into a venv at $ZAPFN_VENV (default ~/.cache/zapfn-venv).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
state=${ZAPFN_EMULATORS_DIR:-$HOME/.cache/zapfn-emulators}
venv=${ZAPFN_VENV:-$HOME/.cache/zapfn-venv}
env_file=$state/env.sh
firestore_port=${ZAPFN_FIRESTORE_PORT:-8787}
pubsub_port=${ZAPFN_PUBSUB_PORT:-8085}
storage_port=${ZAPFN_STORAGE_PORT:-9023}
tasks_port=${ZAPFN_TASKS_PORT:-9090}
# Failed Cloud Tasks are retried this many times by the emulator (unbounded otherwise).
tasks_retries=${ZAPFN_TASKS_EMULATOR_RETRIES:-20}
sdk_platform=/usr/lib/google-cloud-sdk/platform

die() { echo "emulators: $*" >&2; exit 1; }
say() { echo "emulators: $*" >&2; }

# Runs "$@" in a new session (its own process group); records the group id.
launch() {
    local name=$1; shift
    if running "$name"; then say "$name already running (pid $(cat "$state/$name.pid"))"; return; fi
    setsid "$@" >"$state/$name.log" 2>&1 < /dev/null &
    echo $! >"$state/$name.pid"
}

running() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until `check` succeeds, or fails naming the log.
wait_ready() {
    local name=$1 check=$2 i
    for i in $(seq 1 300); do
        if eval "$check"; then say "$name ready"; return; fi
        running "$name" || die "$name exited; see $state/$name.log:
$(tail -n 20 "$state/$name.log")"
        sleep 0.2
    done
    die "$name not ready after 60 s; see $state/$name.log"
}

need_gcloud_emulator() {
    local dir=$1 component=$2
    [ -d "$sdk_platform/$dir" ] && return
    die "the $component is missing ($sdk_platform/$dir). It ships with the Google Cloud SDK on
these machines; elsewhere install the Cloud SDK and run \`gcloud components install $component\`
(or apt packages google-cloud-cli-${component%-emulator}-emulator). It is not on PyPI/crates.io."
}

need_java() {
    command -v java >/dev/null || die "java is missing (the Firestore and Pub/Sub emulators need Java 11+): apt-get install -y openjdk-17-jre-headless"
}

# Creates the venv with gcp-storage-emulator and gcloud-tasks-emulator from PyPI if needed.
python_emulators() {
    if [ -x "$venv/bin/gcp-storage-emulator" ] && [ -x "$venv/bin/gcloud-tasks-emulator" ]; then return; fi
    command -v python3 >/dev/null || die "python3 is missing: apt-get install -y python3 python3-venv"
    say "installing gcp-storage-emulator and gcloud-tasks-emulator into $venv (PyPI)"
    python3 -m venv "$venv" || die "python3 cannot make a venv: apt-get install -y python3-venv"
    "$venv/bin/pip" install -q gcp-storage-emulator gcloud-tasks-emulator \
        || die "pip could not install gcp-storage-emulator gcloud-tasks-emulator (needs PyPI)"
}

http_ok() { curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; }

start() {
    mkdir -p "$state"
    command -v curl >/dev/null || die "curl is missing: apt-get install -y curl"
    need_java
    need_gcloud_emulator cloud-firestore-emulator cloud-firestore-emulator
    need_gcloud_emulator pubsub-emulator pubsub-emulator
    python_emulators

    launch firestore "$sdk_platform/cloud-firestore-emulator/cloud_firestore_emulator" start \
        --host=127.0.0.1 --port="$firestore_port"
    launch pubsub "$sdk_platform/pubsub-emulator/bin/cloud-pubsub-emulator" \
        --host=127.0.0.1 --port="$pubsub_port"
    launch storage "$venv/bin/gcp-storage-emulator" start --host 127.0.0.1 --port "$storage_port" --in-memory
    launch tasks "$venv/bin/gcloud-tasks-emulator" start -p "$tasks_port" -r "$tasks_retries" -q

    wait_ready firestore "http_ok http://127.0.0.1:$firestore_port/"
    wait_ready pubsub "http_ok http://127.0.0.1:$pubsub_port/"
    wait_ready storage "http_ok http://127.0.0.1:$storage_port/storage/v1/b"
    wait_ready tasks "port_open $tasks_port"

    {
        echo "export FIRESTORE_EMULATOR_HOST=127.0.0.1:$firestore_port"
        echo "export PUBSUB_EMULATOR_HOST=127.0.0.1:$pubsub_port"
        echo "export STORAGE_EMULATOR_HOST=http://127.0.0.1:$storage_port"
        echo "export CLOUD_TASKS_EMULATOR_HOST=127.0.0.1:$tasks_port"
    } >"$env_file"
    if [ -f "$here/postgres.sh" ]; then
        # Stop it later only if this script started it.
        bash "$here/postgres.sh" status >/dev/null 2>&1 || touch "$state/postgres.ours"
        url=$(bash "$here/postgres.sh" start | sed -n 's/^ZAPFN_DATABASE_URL=//p' | tail -n 1) || true
        if [ -n "$url" ]; then
            say "postgres ready"
            echo "export ZAPFN_TEST_DATABASE_URL=$url" >>"$env_file"
        else
            say "WARNING: scripts/postgres.sh did not start PostgreSQL (apt-get install -y postgresql); its suites will skip or fail"
        fi
    fi
    say "ready; load the settings with: . $env_file"
}

stop() {
    local name pid
    for name in tasks storage pubsub firestore; do
        [ -f "$state/$name.pid" ] || continue
        pid=$(cat "$state/$name.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM -- "-$pid" 2>/dev/null || true
            for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -KILL -- "-$pid" 2>/dev/null || true
            say "$name stopped"
        fi
        rm -f "$state/$name.pid"
    done
    if [ -f "$state/postgres.ours" ]; then
        bash "$here/postgres.sh" stop >&2 || true
        rm -f "$state/postgres.ours"
    fi
    rm -f "$env_file"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) [ -f "$env_file" ] || die "not started: run scripts/emulators.sh start"; echo "$env_file" ;;
    *) die "usage: scripts/emulators.sh start|stop|env" ;;
esac
