# syntax=docker/dockerfile:1.7
#
# Raceday container image: one image, four services.
#
#   make image                       (buildah; builds local stand-ins for absent base images)
#   docker build -t raceday:0.1.0 .
#   docker run --rm raceday:0.1.0 serve transformer
#
# The base images are build arguments: tools/image/make-bases.sh builds stand-ins from Debian
# packages on machines that cannot pull the official ones (docs/deploy.md).
#
# Stage 1 (rust)    : the official Rust toolchain, only used as a source of cargo/rustc.
# Stage 2 (builder) : Python 3.11 + Rust; builds the raceday wheel (maturin, release profile)
#                     and wheels for every runtime dependency, installs them into /install.
# Stage 3 (runtime) : python:3.11-slim with /install copied in; no compilers, no sources, no
#                     tests, no caches, no secrets, no embedded PostgreSQL; runs as user 10001.
#
# Configuration comes only from the environment at run time (see docs/deploy.md); nothing
# environment-specific is baked into the image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG RUST_IMAGE=rust:1-slim-bookworm

FROM ${RUST_IMAGE} AS rust

FROM ${PYTHON_IMAGE} AS builder

ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    CARGO_NET_RETRY=5 \
    MATURIN_PEP517_ARGS=--locked

# A C toolchain is needed to link the Rust extension (rustc calls `cc`). Builder stage only.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo

WORKDIR /src
# .dockerignore is an allow-list: only the build inputs (pyproject, README, services/, proto/,
# rust_ext/ without target/) reach this stage.
COPY . .

# The raceday wheel (maturin via PEP 517) plus wheels for all of its dependencies, installed
# into /install/usr/local for the runtime stage to copy: it then needs neither a compiler nor pip
# at build time. A build behind a TLS-intercepting proxy passes its CA bundle as the build secret
# `ca_bundle` (`make image` passes the host's); it is mounted for this step only.
# The shared libraries lose their symbol tables (strip, from binutils: builder only), 20 MB less;
# the bytecode is compiled for the paths the runtime stage installs to.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/rust_ext/target \
    --mount=type=secret,id=ca_bundle,target=/run/secrets/ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then \
      export PIP_CERT=/run/secrets/ca_bundle CARGO_HTTP_CAINFO=/run/secrets/ca_bundle \
             SSL_CERT_FILE=/run/secrets/ca_bundle; \
    fi \
    && pip wheel --wheel-dir /wheels . \
    && pip install --no-index --find-links=/wheels --no-compile --no-warn-script-location \
       --root=/install /wheels/raceday-*.whl \
    && find /install -name '*.so*' -type f -exec strip --strip-unneeded {} + \
    && python -m compileall -q -j 0 -s /install -p / /install/usr/local/lib


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="raceday" \
      org.opencontainers.image.description="Raceday: NZ TAB racing money flow (gRPC microservices)"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Fixed numeric ids so Kubernetes can verify runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 raceday \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/raceday --create-home \
       --shell /usr/sbin/nologin raceday

# The installed packages (no wheels, no pip run here), then a smoke test of the command.
COPY --from=builder /install/usr/local /usr/local
RUN raceday --help > /dev/null

WORKDIR /home/raceday
USER 10001:10001

# gRPC (fetcher, transformer, writer, gateway health), gateway HTTP, Prometheus metrics.
EXPOSE 50051 50052 50053 50054 8080 9101 9102 9103 9104

ENTRYPOINT ["raceday"]
CMD ["serve", "gateway"]
