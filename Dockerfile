# syntax=docker/dockerfile:1.7
# One image per function (BuildKit):
#
#   docker build --build-arg FUNCTION=webhook -t zapfn-webhook .
#   docker build --build-arg FUNCTION=media-audio --build-arg VARIANT=media \
#       --build-arg MEDIA_PACKAGES="ffmpeg pocketsphinx pocketsphinx-en-us" -t zapfn-media-audio .
#
# FUNCTION selects the binary (functions/FUNCTION → zapfn-FUNCTION). VARIANT picks the
# runtime: `slim` (distroless cc, ~20 MB plus the binary) or `media` (Debian slim with
# the command-line tools in MEDIA_PACKAGES, for the media functions only).
# BINARIES=prebuilt copies binaries from ./dist instead of compiling (Cloud Build
# compiles every function once with scripts/build-functions.sh, then builds the images).
# The container runs as a non-root user and listens on $PORT (Cloud Run sets it).

ARG RUST_VERSION=1.95
ARG FUNCTION=webhook
ARG VARIANT=slim
ARG BINARIES=builder

# --- compile (same script and flags as `scripts/build-functions.sh` outside Docker)
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY . .
ARG FUNCTION
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    CARGO_TARGET_DIR=/src/target scripts/build-functions.sh /out "${FUNCTION}"

# --- or take the binaries Cloud Build already compiled into ./dist
FROM scratch AS prebuilt
COPY dist/ /out/

FROM ${BINARIES} AS binaries

# --- runtime for every function without media tools
FROM gcr.io/distroless/cc-debian12:nonroot AS slim

# --- runtime for the media functions: Debian slim plus their tools
FROM debian:bookworm-slim AS media
ARG MEDIA_PACKAGES="ffmpeg tesseract-ocr tesseract-ocr-eng tesseract-ocr-por pocketsphinx pocketsphinx-en-us poppler-utils"
# Versions come from Debian 12's security-maintained archive; pinning each one would
# freeze out its security updates (the base image tag is pinned instead).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates ${MEDIA_PACKAGES} \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 nonroot \
    && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin nonroot

# --- the function's image
# hadolint ignore=DL3006
FROM ${VARIANT}
ARG FUNCTION
COPY --from=binaries /out/zapfn-${FUNCTION} /usr/local/bin/zapfn-function
ENV ZAPFN_HOST=0.0.0.0 \
    PORT=8080 \
    ZAPFN_DATA_DIR=/tmp/zapfn
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/zapfn-function"]
