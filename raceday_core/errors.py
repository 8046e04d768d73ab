"""Exceptions raised for malformed TAB event payloads.

The Rust extension raises these very classes (it imports this module), so one
`except PayloadError` catches a bad payload from either implementation.
"""

from __future__ import annotations


class PayloadError(ValueError):
    """A payload the transform cannot use; the message names the field path."""


class PayloadDecodeError(PayloadError):
    """The payload is not valid JSON (or not UTF-8, or its root is not an object)."""


class PayloadSchemaError(PayloadError):
    """Valid JSON, but a required field is missing, has the wrong type or is out of range."""
