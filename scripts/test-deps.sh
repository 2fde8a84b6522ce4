#!/usr/bin/env bash
# Installs, with apt, the system tools the tests run for real (a C toolchain,
# sqlite3, ffmpeg, tesseract with Portuguese and English, pocketsphinx,
# espeak-ng, poppler, ImageMagick, fonts); does nothing when all are present.
# Run by `make test` and `.ci/run`; needs root or sudo only when something is missing.
set -euo pipefail

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
# Media tools: the media processors' tests run the real ones (and fail loudly without them).
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
tesseract --list-langs 2>/dev/null | grep -qx por || need_apt+=(tesseract-ocr tesseract-ocr-por tesseract-ocr-eng)
command -v pocketsphinx_continuous >/dev/null || need_apt+=(pocketsphinx)
[ -d /usr/share/pocketsphinx/model/en-us/en-us ] || need_apt+=(pocketsphinx-en-us)
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v pdftotext >/dev/null || need_apt+=(poppler-utils)
command -v curl >/dev/null || need_apt+=(curl) # scripts/check-functions.sh
command -v bc >/dev/null || need_apt+=(bc)
[ -x /usr/bin/convert ] || need_apt+=(imagemagick)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
[ ${#need_apt[@]} -eq 0 ] && exit 0

echo "test-deps: installing ${need_apt[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
        echo "test-deps: not root and no sudo; install: ${need_apt[*]}" >&2
        exit 1
    }
    sudo=(sudo)
fi
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need_apt[@]}"
