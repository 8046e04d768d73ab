"""Checks shared by the contract tests: response schemas from the gateway's own OpenAPI document,
and the timestamp rule of rest-api.md §1.3 applied to every value of every body."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from services.gateway.schemas import TIMESTAMP_PATTERN

NZ_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
OFFSET_SUFFIX = re.compile(r"\.\d{3}[+-]\d{2}:\d{2}$")
LOOKS_LIKE_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T")
BASE_URI = "urn:raceday:openapi"


def walk_strings(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_strings(item, f"{path}[{index}]")


def assert_nz_timestamps(body: Any) -> int:
    """Every instant in `body` is NZ-offset with milliseconds, never Z; returns how many were seen."""
    seen = 0
    for path, text in walk_strings(body):
        if LOOKS_LIKE_INSTANT.match(text):
            seen += 1
            assert NZ_TIMESTAMP.fullmatch(text), f"{path}: {text!r}"
            assert OFFSET_SUFFIX.search(text), f"{path}: {text!r}"
            assert not text.endswith("Z"), f"{path}: {text!r}"
    return seen


class SchemaChecker:
    """Validates bodies against the component schemas of an OpenAPI document (JSON Schema 2020-12)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(BASE_URI, resource)

    def response_schema(self, path: str, method: str, status: int) -> dict[str, Any]:
        """The documented schema of one response."""
        responses = self.document["paths"][path][method.lower()]["responses"]
        schema: dict[str, Any] = responses[str(status)]["content"]["application/json"]["schema"]
        return schema

    def validate(self, body: Any, schema: dict[str, Any]) -> None:
        """Raise jsonschema.ValidationError when `body` breaks `schema`."""
        validator = jsonschema.Draft202012Validator(_rebase(schema), registry=self.registry)
        validator.validate(body)

    def validate_response(self, path: str, method: str, status: int, body: Any) -> None:
        """Validate a body against the documented response of (path, method, status)."""
        self.validate(body, self.response_schema(path, method, status))


def _rebase(schema: Any) -> Any:
    """Point local component references at the registered document."""
    if isinstance(schema, dict):
        return {
            key: f"{BASE_URI}{value}"
            if key == "$ref" and isinstance(value, str) and value.startswith("#")
            else _rebase(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase(item) for item in schema]
    return schema
