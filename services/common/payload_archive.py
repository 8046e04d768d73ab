"""The raw-payload archive's format: content address, compression, and the way back.

A payload is archived uncompressed-hashed and zstd-compressed: its address is the SHA-256 of
the bytes the TAB meant (the body without its Content-Encoding), so the same snapshot has
one address whether it arrived gzip or identity; its stored form is one zstd frame of those
bytes. The fetcher packs (services/fetcher/archive.py), the writer stores
(services/writer/archive.py), and replay, export and the simulated TAB unpack.

The Rust core's gzip reader, hashlib and zstandard release the GIL on large buffers, so packing
runs on a worker thread without holding up the event loop. (Measured on the recorded 410 KB
event: zstd level 1 gives 7.9% of the raw size, as level 3 does; packing a 350 KB event takes
about 0.8 ms: inflate 0.23, SHA-256 0.19, zstd 0.33; see README "Archive and replay".)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

import zstandard

from raceday_core import PayloadError, inflate_payload

# The most a payload may inflate to (the Rust core's limit too, rust_ext/core/src/inflate.rs).
MAX_PAYLOAD_BYTES: Final = 64 * 1024 * 1024
# Level 1: on TAB events as small as level 3 (7.9% of the raw bytes) in three quarters of the time.
DEFAULT_ZSTD_LEVEL: Final = 1
HASH_BYTES: Final = 32
ENCODINGS: Final = ("identity", "gzip")


class ArchiveFormatError(ValueError):
    """A payload that cannot be packed or unpacked (bad gzip, bad zstd, wrong size or hash)."""


@dataclass(frozen=True, slots=True)
class PackedPayload:
    """One payload as the archive keeps it."""

    payload_hash: bytes
    raw_bytes: int
    zstd_payload: bytes


def normalise_encoding(encoding: str) -> str:
    """`identity` or `gzip` (the fetcher's "" is identity); ArchiveFormatError for anything else."""
    value = encoding.strip().lower() or "identity"
    if value not in ENCODINGS:
        raise ArchiveFormatError(f"payload encoding {encoding!r} is not supported (identity or gzip)")
    return value


def inflate(body: bytes, encoding: str) -> bytes:
    """The body without its content encoding, refusing more than MAX_PAYLOAD_BYTES."""
    if normalise_encoding(encoding) == "identity":
        return body
    # The Rust core's gzip reader (several members read as one, like the transformer's; the same
    # limit), with the GIL released: about half the time of Python's zlib on a 350 KB event.
    try:
        return inflate_payload(body, "gzip")
    except PayloadError as exc:
        raise ArchiveFormatError(str(exc)) from None


def payload_hash(raw: bytes) -> bytes:
    """The archive address of an uncompressed payload: its SHA-256."""
    return hashlib.sha256(raw).digest()


class Packer:
    """Packs payloads with one reused zstd context (creating one costs about as much as compressing).

    Not thread-safe: one Packer per thread, or calls one at a time.
    """

    def __init__(self, level: int = DEFAULT_ZSTD_LEVEL) -> None:
        self._compressor = zstandard.ZstdCompressor(level=level)

    def pack(self, body: bytes, encoding: str) -> PackedPayload:
        """Hash and compress a payload as received (`encoding` identity or gzip)."""
        raw = inflate(body, encoding)
        compressed = self._compressor.compress(raw)
        return PackedPayload(payload_hash=payload_hash(raw), raw_bytes=len(raw), zstd_payload=compressed)


def pack(body: bytes, encoding: str, level: int = DEFAULT_ZSTD_LEVEL) -> PackedPayload:
    """Hash and compress one payload as received (a Packer for many)."""
    return Packer(level).pack(body, encoding)


def unpack(zstd_payload: bytes, raw_bytes: int, expected_hash: bytes | None = None) -> bytes:
    """The uncompressed payload of an archived frame, checked against its size (and hash)."""
    if raw_bytes < 0 or raw_bytes > MAX_PAYLOAD_BYTES:
        raise ArchiveFormatError(f"archived payload claims {raw_bytes} bytes")
    try:
        raw = zstandard.ZstdDecompressor().decompress(zstd_payload, max_output_size=max(raw_bytes, 1))
    except zstandard.ZstdError as exc:
        raise ArchiveFormatError(f"archived payload is not a valid zstd frame: {exc}") from None
    if len(raw) != raw_bytes:
        raise ArchiveFormatError(f"archived payload inflates to {len(raw)} bytes, not {raw_bytes}")
    if expected_hash is not None and payload_hash(raw) != expected_hash:
        raise ArchiveFormatError("archived payload does not match its hash")
    return raw
