"""Acceptance 2: property-based fuzzing of the API from its own OpenAPI document (schemathesis).

Every documented operation gets schema-valid and schema-violating requests against the real
gateway and writer; no answer may be a 5xx, an undocumented status, or a body that breaks the
documented schema. Bounded: a fixed number of examples per operation, derandomized.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis
import hypothesis.errors
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.gateway.conftest import Stack

EXAMPLES_PER_MODE = 12
CHECKS: list[Any] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(base_url: str, known_ids: dict[str, str]) -> tuple[list[str], int]:
    """Run every operation in both generation modes, and once more with ids of seeded data so that
    successful answers are fuzzed too; return the failures found and the number of requests."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json")
    failures: list[str] = []
    operations = 0
    calls = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"invalid operation in the document: {result.err()}")
            continue
        operation = result.ok()
        if operation.path == "/api/stream":
            continue  # an endless event stream, not a request/response (tests/gateway/test_stream.py)
        operations += 1
        names = {param.name for param in operation.query}
        path_names = {param.name for param in operation.path_parameters}
        seeded_query = {name: value for name, value in known_ids.items() if name in names}
        seeded_path = {name: value for name, value in known_ids.items() if name in path_names}
        passes: list[tuple[str, Any]] = [
            ("positive", operation.as_strategy(generation_mode=GenerationMode.POSITIVE)),
            ("negative", operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)),
        ]
        if seeded_query or seeded_path:
            passes.append(
                (
                    "seeded",
                    operation.as_strategy(
                        generation_mode=GenerationMode.POSITIVE,
                        query=seeded_query or None,
                        path_parameters=seeded_path or None,
                    ),
                )
            )
        for mode, strategy in passes:

            @hypothesis.settings(
                max_examples=EXAMPLES_PER_MODE,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @hypothesis.given(case=strategy)
            def run(case: schemathesis.Case[Any]) -> None:
                nonlocal calls
                calls += 1
                case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                # Operations without parameters or body have no invalid input to generate.
                assert mode == "negative", operation.label
            except Exception as exc:  # one operation's failure must not hide the others'
                failures.append(f"{operation.label} [{mode}]: {str(exc)[:2000]}")
    assert operations >= 18, f"only {operations} operations in the document"
    return failures, calls


async def test_fuzzing_finds_no_server_errors_or_schema_violations(seeded_stack: Stack) -> None:
    day = seeded_stack.day
    assert day is not None
    known = {"race_id": day.live_race, "raceId": day.live_race, "meeting_id": day.meeting_ids[0]}
    failures, calls = await asyncio.to_thread(fuzz, seeded_stack.base_url, known)
    assert not failures, "\n\n".join(failures)
    assert calls > 300
