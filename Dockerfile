# syntax=docker/dockerfile:1.7
#
# Triage container image: a static-ish Rust binary on distroless, non-root.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     -t registry.example.com/platform/triage:0.1.0 --push .
#
# Two architectures without emulation: the builder stage always runs on the build
# machine's own platform ($BUILDPLATFORM) and cross-compiles for $TARGETARCH with
# Debian's cross gcc (needed for the C parts: bundled SQLite and ring). Building the
# arm64 image under QEMU would also work but compiles Rust many times slower.
#
# Builder and runtime share one Debian release (bookworm = distroless debian12), so
# the binary's glibc matches. For reproducible production builds, pin both base images
# by digest (`FROM image:tag@sha256:…`).

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS builder
ARG TARGETARCH
ARG BUILDARCH

SHELL ["/bin/bash", "-euo", "pipefail", "-c"]

# Cross linker and C compiler for the target, only when it differs from the builder.
# Versions are not pinned: Debian's security updates replace package versions on the
# mirror, so a pinned version stops resolving within weeks; the base image tag pins
# the release instead.
# hadolint ignore=DL3008
RUN if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      case "$TARGETARCH" in \
        amd64) gcc=gcc-x86-64-linux-gnu libc=libc6-dev-amd64-cross ;; \
        arm64) gcc=gcc-aarch64-linux-gnu libc=libc6-dev-arm64-cross ;; \
        *) echo "unsupported TARGETARCH: $TARGETARCH (amd64 and arm64 are)" >&2; exit 1 ;; \
      esac; \
      apt-get update; \
      apt-get install -y --no-install-recommends "$gcc" "$libc"; \
      rm -rf /var/lib/apt/lists/*; \
    fi

# The Rust target triple for $TARGETARCH, and the gcc that links for it (the native
# gcc has the same triplet-prefixed name, so one set of variables serves both cases).
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
RUN case "$TARGETARCH" in \
      amd64) echo x86_64-unknown-linux-gnu ;; \
      arm64) echo aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported TARGETARCH: $TARGETARCH" >&2; exit 1 ;; \
    esac > /rust-target \
 && rustup target add "$(cat /rust-target)"

WORKDIR /src
COPY . .

# Dependencies are cached across builds in BuildKit cache mounts (registry, git
# checkouts, target/), not in layers: a source change recompiles only the crate, and
# the cache never ends up in an image. `--locked`: exactly the Cargo.lock versions.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    target="$(cat /rust-target)" \
 && cargo build --release --locked --target "$target" --bin triage \
 && install -D -m 0755 "target/$target/release/triage" /out/triage \
 && install -d -m 0750 /out/data

# Runtime: glibc, libgcc and CA certificates, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="triage" \
      org.opencontainers.image.description="Turns Argo CD and Alertmanager failures into enriched, deduplicated GitHub/Gitea work orders for the cluster-doctor agent" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=builder /out/triage /triage
# The working directory holds the SQLite file (store.path defaults to triage.db) and
# the local forge's files when no volume is mounted; owned by the runtime user.
COPY --from=builder --chown=65532:65532 /out/data /var/lib/triage
WORKDIR /var/lib/triage

# distroless' `nonroot`, by number so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532

EXPOSE 8080
ENTRYPOINT ["/triage"]
# Triage listens on loopback unless told otherwise; in a container that would be
# unreachable, so the default command listens on all interfaces of the container's own
# network namespace. The Kubernetes manifests replace this with `serve` and set
# server.listen in their config file.
CMD ["serve", "--listen", "0.0.0.0:8080"]
