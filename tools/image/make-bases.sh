#!/usr/bin/env bash
# Local stand-ins for the Dockerfile's base images, for machines that cannot pull them.
#
# The Dockerfile builds FROM python:3.11-slim-bookworm (builder and runtime) and copies the Rust
# toolchain out of rust:1-slim-bookworm. Where those are in the local buildah storage (or can be
# pulled), they are used as they are. Where they are not (no registry access), this script builds
#   localhost/raceday-base/python:3.11-slim-bookworm  Debian bookworm (mmdebstrap, minbase) with
#       Debian's python3.11, and a virtual environment at /usr/local so that `python` and `pip`
#       live in /usr/local/bin as in the official image (pip from the interpreter's own ensurepip);
#   localhost/raceday-base/rust:1-slim-bookworm  only /usr/local/rustup and /usr/local/cargo (all
#       the Dockerfile takes from the official image): this machine's rustup toolchain, because
#       no toolchain can be downloaded here and Debian bookworm's rustc (1.63) is too old for PyO3.
#
# Prints the `--build-arg` options that select the bases to use, one per line (stdout only;
# progress goes to stderr). Needs root, buildah and mmdebstrap (`make image` installs them).
set -euo pipefail

PYTHON_OFFICIAL=docker.io/library/python:3.11-slim-bookworm
RUST_OFFICIAL=docker.io/library/rust:1-slim-bookworm
PYTHON_STANDIN=localhost/raceday-base/python:3.11-slim-bookworm
RUST_STANDIN=localhost/raceday-base/rust:1-slim-bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PULL_TIMEOUT_S=${RACEDAY_BASE_PULL_TIMEOUT_S:-30}

say() { echo "make-bases: $*" >&2; }

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# An official image present locally or pullable within the timeout.
official() {
  have_image "$1" && return 0
  say "trying to pull $1 (${PULL_TIMEOUT_S} s)"
  timeout "$PULL_TIMEOUT_S" buildah pull --quiet "$1" >/dev/null 2>&1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python_standin() {
  say "building $PYTHON_STANDIN from Debian bookworm packages (mmdebstrap)"
  # Docs, man pages and locales are left out of the rootfs, as the official slim images do. The
  # merged-usr hook sets /usr up itself: otherwise apt satisfies init-system-helpers with the
  # usrmerge package, which drags in a full Perl (50 MB).
  mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=python3.11,python3.11-venv,ca-certificates,netbase,tzdata \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='chroot "$1" python3.11 -m venv /usr/local' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
    bookworm "$work/python.tar" "$MIRROR" >&2
  local ctr
  ctr=$(buildah from scratch)
  local root
  root=$(buildah mount "$ctr")
  tar -C "$root" -xf "$work/python.tar"
  buildah umount "$ctr" >/dev/null
  buildah config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 \
    --label org.opencontainers.image.description="stand-in for python:3.11-slim-bookworm, from Debian packages" \
    "$ctr"
  buildah commit --quiet --rm "$ctr" "$PYTHON_STANDIN" >/dev/null
}

rust_standin() {
  local rustup_home=${RUSTUP_HOME:-$HOME/.rustup} cargo_home=${CARGO_HOME:-$HOME/.cargo}
  local toolchain
  toolchain=$(cd "$rustup_home/toolchains" && basename "$(readlink -f "$(rustup show active-toolchain 2>/dev/null | cut -d' ' -f1)")" 2>/dev/null || true)
  [ -n "$toolchain" ] && [ -d "$rustup_home/toolchains/$toolchain" ] || toolchain=stable-x86_64-unknown-linux-gnu
  [ -x "$rustup_home/toolchains/$toolchain/bin/rustc" ] || { say "no Rust toolchain at $rustup_home/toolchains/$toolchain"; exit 1; }
  say "building $RUST_STANDIN from this machine's toolchain $toolchain ($("$rustup_home/toolchains/$toolchain/bin/rustc" --version))"
  local tree=$work/rust
  mkdir -p "$tree/usr/local/rustup/toolchains/$toolchain" "$tree/usr/local/cargo/bin"
  # bin, lib and libexec: the compiler, cargo and the standard library; not share/ (docs, 800 MB).
  cp -a "$rustup_home/toolchains/$toolchain/bin" "$rustup_home/toolchains/$toolchain/lib" \
    "$tree/usr/local/rustup/toolchains/$toolchain/"
  [ -d "$rustup_home/toolchains/$toolchain/libexec" ] && cp -a "$rustup_home/toolchains/$toolchain/libexec" "$tree/usr/local/rustup/toolchains/$toolchain/"
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\nauto_self_update = "disable"\n' "$toolchain" \
    > "$tree/usr/local/rustup/settings.toml"
  # rustup's proxies: one binary that acts as cargo or rustc by the name it is called by.
  for proxy in rustup cargo rustc; do cp "$cargo_home/bin/rustup" "$tree/usr/local/cargo/bin/$proxy"; done
  local ctr
  ctr=$(buildah from scratch)
  buildah copy --quiet "$ctr" "$tree" / >/dev/null
  buildah config --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/bin:/bin \
    --label org.opencontainers.image.description="stand-in for rust:1-slim-bookworm: /usr/local/rustup and /usr/local/cargo only" \
    "$ctr"
  buildah commit --quiet --rm "$ctr" "$RUST_STANDIN" >/dev/null
}

if official "$PYTHON_OFFICIAL"; then
  python_image=$PYTHON_OFFICIAL
else
  have_image "$PYTHON_STANDIN" || python_standin
  python_image=$PYTHON_STANDIN
fi
if official "$RUST_OFFICIAL"; then
  rust_image=$RUST_OFFICIAL
else
  have_image "$RUST_STANDIN" || rust_standin
  rust_image=$RUST_STANDIN
fi
say "bases: python $python_image, rust $rust_image"
echo "--build-arg=PYTHON_IMAGE=$python_image"
echo "--build-arg=RUST_IMAGE=$rust_image"
