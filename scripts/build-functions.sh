#!/usr/bin/env bash
# Release binaries of the deployed functions, built exactly as the container
# images build them (the Dockerfile and cloudbuild.yaml call this script):
#
#   scripts/build-functions.sh OUT_DIR [FUNCTION...]   # every crate in functions/ when none is named
#
# Target: the host's x86_64-unknown-linux-gnu with the workspace `release` profile
# (thin LTO, stripped), linked against glibc 2.36 (Debian 12), which is what the
# runtime images (distroless cc-debian12, debian:bookworm-slim) provide. A static
# musl build needs the musl Rust target, which cannot be installed on machines
# without rustup downloads; the distroless `cc` image carries the few shared
# libraries (libc, libgcc_s) the binaries need. Not `--locked`: Cargo.lock is
# shared by concurrent work and may carry entries cargo would prune.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 OUT_DIR [FUNCTION...]" >&2; exit 2; }
out=$1
shift
if [ $# -eq 0 ]; then
    for dir in functions/*/; do set -- "$@" "$(basename "$dir")"; done
fi
packages=()
for function in "$@"; do
    [ -f "functions/$function/Cargo.toml" ] || { echo "no function crate functions/$function" >&2; exit 2; }
    packages+=(-p "zapfn-$function")
done
cargo build --release "${packages[@]}"
mkdir -p "$out"
for function in "$@"; do
    cp "${CARGO_TARGET_DIR:-target}/release/zapfn-$function" "$out/"
done
