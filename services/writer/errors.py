"""Errors the writer's RPCs map to gRPC status codes."""

from __future__ import annotations


class NotFoundError(Exception):
    """An unknown id (NOT_FOUND); the message is short and safe to show."""


class InvalidArgumentError(ValueError):
    """A bad request (INVALID_ARGUMENT); the message is short and safe to show."""
