#!/usr/bin/env bash
# Estimated compressed (pushed/pulled) size of a function's `slim` image, without
# a Docker engine or registry access: the layers the image is made of, each as
# the gzip'd tar a registry stores.
#
#   scripts/image-size.sh base           # bytes of the runtime base layers
#   scripts/image-size.sh image BINARY   # bytes of base + the layer COPY makes of BINARY
#
# Base: gcr.io/distroless/cc-debian12 is built (GoogleContainerTools/distroless,
# static/static.bzl, base/config.bzl, cc/config.bzl) from Debian 12 packages, one
# layer each: base-files netbase tzdata media-types, the CA bundle (here: the
# ca-certificates package), libc6 libssl3, libgomp1 libstdc++6 libgcc-s1
# gcc-12-base, plus a few tiny files (passwd, group, nsswitch.conf, /tmp). This
# script downloads those packages from Debian 12's archive (`apt-get download`)
# and gzips each package's file tree (level 6, as Docker and BuildKit compress
# layers). It is an estimate: the published image carries the versions current
# when it was built. Cached for a day in ~/.cache/zapfn-image-size.
set -euo pipefail
PACKAGES="base-files netbase tzdata media-types ca-certificates libc6 libssl3 libgomp1 libstdc++6 libgcc-s1 gcc-12-base"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/zapfn-image-size
die() { echo "image-size: $*" >&2; exit 1; }

gz_bytes() { gzip -6 -n | wc -c; }

base_bytes() {
    local cached=$cache/distroless-cc-debian12.bytes
    if [ -s "$cached" ] && [ -n "$(find "$cached" -mmin -1440)" ]; then
        cat "$cached"
        return
    fi
    command -v apt-get >/dev/null || die "needs apt-get (Debian 12) to fetch the base image's packages"
    local work total=0 deb
    work=$(mktemp -d)
    # apt's sandbox user cannot write into a private mktemp directory.
    chmod 755 "$work"
    (cd "$work" && apt-get download $PACKAGES >/dev/null 2>"$work/apt.log") \
        || die "apt-get download failed (run apt-get update?): $(tail -n 3 "$work/apt.log")"
    for deb in "$work"/*.deb; do
        total=$((total + $(dpkg-deb --fsys-tarfile "$deb" | gz_bytes)))
    done
    rm -rf "$work"
    mkdir -p "$cache"
    echo "$total" >"$cached"
    echo "$total"
}

layer_bytes() { # the layer `COPY … /usr/local/bin/zapfn-function` adds
    local binary=$1
    [ -f "$binary" ] || die "no file $binary"
    tar -c --owner=0 --group=0 --numeric-owner --mtime=@0 \
        --transform="s|.*|usr/local/bin/zapfn-function|" -C "$(dirname "$binary")" "$(basename "$binary")" \
        | gz_bytes
}

case ${1:-} in
    base) base_bytes ;;
    image)
        [ $# -eq 2 ] || die "usage: $0 image BINARY"
        echo $(($(base_bytes) + $(layer_bytes "$2")))
        ;;
    *) die "usage: $0 base | image BINARY" ;;
esac
