"""TransformerService: one poll's payload, poll time and prior state in, the race update out.

The request and the response stay bytes: the Rust core decodes the serialised
TransformRequest, inflates a gzip payload, transforms and encodes the TransformResponse,
with the GIL released. By default it runs on the event loop itself: a poll's transform takes
well under a millisecond, and handing it to a thread and back costs more than it saves
(RACEDAY_TRANSFORMER_WORKERS gives it threads instead, for a process with cores to spare).
A malformed payload or request answers INVALID_ARGUMENT with a one-line message; anything
else answers INTERNAL and is logged with its traceback. Either way the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

import grpc
from prometheus_client import Counter, Histogram

import raceday_core
from services.common.logs import log_event
from services.common.proto.raceday.v1 import transformer_pb2
from services.common.servicers import add_servicer
from services.transformer.engine import nz_date_text, one_line

logger = logging.getLogger(__name__)

SERVICE = transformer_pb2.DESCRIPTOR.services_by_name["TransformerService"]
SERVICE_NAME = SERVICE.full_name

TRANSFORM_SECONDS = Histogram(
    "raceday_transform_seconds",
    "Time to answer one Transform call: decode, Rust transform, encode (all outcomes)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
TRANSFORMS = Counter(
    "raceday_transforms_total",
    "Transform calls by outcome: ok, invalid (INVALID_ARGUMENT), error (INTERNAL) or cancelled",
    ["outcome"],
)
for _outcome in ("ok", "invalid", "error", "cancelled"):
    TRANSFORMS.labels(_outcome)

# A serialised TransformRequest in, a serialised TransformResponse out.
EncodedTransform = Callable[[bytes], bytes]


def transform_encoded(request: bytes) -> bytes:
    """The Rust core's bytes path, with services/common/nztime as the one NZ calendar."""
    return raceday_core.transform_encoded(request, nz_date_text)


def _observe(outcome: str, started: float) -> None:
    TRANSFORM_SECONDS.observe(time.perf_counter() - started)
    TRANSFORMS.labels(outcome).inc()


def _race_id(request: bytes) -> str | None:
    """The request's race, for a log line about a failed call (parsed only then)."""
    try:
        return transformer_pb2.TransformRequest.FromString(request).prior_state.race_id or None
    except Exception:  # the bytes may be anything
        return None


def add_transformer_servicer(servicer: TransformerService, server: grpc.aio.Server) -> None:
    """Register TransformerService with Transform taking and returning serialised messages."""
    add_servicer(server, SERVICE, servicer, raw_requests={"Transform"}, raw_responses={"Transform"})


class TransformerService:
    """The gRPC servicer; stateless apart from its executor (None: transforms run on the loop)."""

    def __init__(self, executor: Executor | None, transform: EncodedTransform = transform_encoded) -> None:
        self._executor = executor
        self._transform = transform

    async def Transform(self, request: bytes, context: grpc.aio.ServicerContext[object, object]) -> bytes:
        """Transform one raw event payload (see proto/raceday/v1/transformer.proto)."""
        started = time.perf_counter()
        try:
            if self._executor is None:
                response = self._transform(request)
            else:
                loop = asyncio.get_running_loop()
                response = await loop.run_in_executor(self._executor, self._transform, request)
        except ValueError as exc:
            # PayloadError is a ValueError too: a bad payload or a bad request, not our fault.
            # Counted before aborting: the client sees the status as soon as abort() is called.
            _observe("invalid", started)
            message = one_line(str(exc)) or type(exc).__name__
            log_event(
                logger,
                "transform_rejected",
                logging.WARNING,
                race_id=_race_id(request),
                request_bytes=len(request),
                reason=message,
            )
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        except asyncio.CancelledError:
            # The client went away (deadline or cancel); the worker thread finishes on its own.
            _observe("cancelled", started)
            raise
        except BaseException as exc:
            # BaseException: a Rust panic surfaces as pyo3's PanicException, which is not an Exception.
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            _observe("error", started)
            logger.exception(
                "transform_failed", extra={"race_id": _race_id(request), "request_bytes": len(request)}
            )
            await context.abort(grpc.StatusCode.INTERNAL, "transform failed: internal error (see server log)")
        _observe("ok", started)
        log_event(
            logger,
            "transformed",
            logging.DEBUG,
            request_bytes=len(request),
            response_bytes=len(response),
            transform_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return response
