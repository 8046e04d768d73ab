"""TransformerService: one poll's payload, poll time and prior state in, the race update out.

The Rust extension does the work on a small thread pool (it releases the GIL), so the
event loop keeps accepting calls while transforms run. A malformed payload answers
INVALID_ARGUMENT with a one-line message; anything else answers INTERNAL and is logged
with its traceback. Either way the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor

import grpc
from prometheus_client import Counter, Histogram

import raceday_core
from raceday_core.errors import PayloadError
from services.common.logs import log_event
from services.common.proto.raceday.v1 import transformer_pb2, transformer_pb2_grpc
from services.common.timestamps import ms_from_timestamp
from services.transformer.convert import (
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    ConversionError,
    state_from_proto,
    update_to_proto,
)
from services.transformer.engine import MoneyFlowEngine, one_line, run_transform

logger = logging.getLogger(__name__)

SERVICE_NAME = transformer_pb2.DESCRIPTOR.services_by_name["TransformerService"].full_name

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


def _observe(outcome: str, started: float) -> None:
    TRANSFORM_SECONDS.observe(time.perf_counter() - started)
    TRANSFORMS.labels(outcome).inc()


class RequestError(ValueError):
    """The request itself is incomplete (not the payload)."""


class TransformerService(transformer_pb2_grpc.TransformerServiceServicer):
    """The gRPC servicer; stateless apart from its executor."""

    def __init__(self, executor: Executor, engine: MoneyFlowEngine = raceday_core) -> None:
        self._executor = executor
        self._engine = engine

    async def Transform(
        self, request: transformer_pb2.TransformRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> transformer_pb2.TransformResponse:
        """Transform one raw event payload (see proto/raceday/v1/transformer.proto)."""
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(self._executor, self._transform, request)
        except (PayloadError, RequestError, ConversionError) as exc:
            # Counted before aborting: the client sees the status as soon as abort() is called.
            _observe("invalid", started)
            message = one_line(str(exc)) or type(exc).__name__
            log_event(
                logger,
                "transform_rejected",
                logging.WARNING,
                race_id=request.prior_state.race_id or None,
                payload_bytes=len(request.payload),
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
                "transform_failed",
                extra={"race_id": request.prior_state.race_id or None, "payload_bytes": len(request.payload)},
            )
            await context.abort(grpc.StatusCode.INTERNAL, "transform failed: internal error (see server log)")
        _observe("ok", started)
        log_event(
            logger,
            "transformed",
            logging.DEBUG,
            race_id=response.update.race_id,
            money_flow_rows=len(response.update.money_flow),
            odds_rows=len(response.update.odds),
            transform_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return response

    def _transform(self, request: transformer_pb2.TransformRequest) -> transformer_pb2.TransformResponse:
        """Runs on a worker thread: decode the request, transform, encode the update."""
        if not request.HasField("polled_at"):
            raise RequestError("polled_at is required: the receive time of the payload")
        polled_at_ms = ms_from_timestamp(request.polled_at)
        if not MIN_TIMESTAMP_MS <= polled_at_ms <= MAX_TIMESTAMP_MS:
            raise RequestError(f"polled_at is out of range: {polled_at_ms} ms since the epoch")
        prior_state = state_from_proto(request.prior_state)
        try:
            update = run_transform(self._engine, request.payload, polled_at_ms, prior_state)
        except PayloadError:
            raise
        except ValueError as exc:
            # The engine's contract: a plain ValueError means a bad argument other than the payload.
            raise RequestError(f"bad request: {exc}") from exc
        return transformer_pb2.TransformResponse(update=update_to_proto(update))
