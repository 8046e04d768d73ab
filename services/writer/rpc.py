"""Mapping of writer errors to gRPC status codes, shared by both servicers."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import psycopg
from prometheus_client import Histogram

from services.common.logs import log_event
from services.writer.db import DatabaseUnavailableError
from services.writer.errors import InvalidArgumentError, NotFoundError

logger = logging.getLogger(__name__)

S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[S, Req, Context], Awaitable[Resp]]


def classify(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and a short, safe message for an exception (no raw database text)."""
    if isinstance(exc, InvalidArgumentError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, DatabaseUnavailableError):
        return grpc.StatusCode.UNAVAILABLE, "database unavailable"
    if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return grpc.StatusCode.DEADLINE_EXCEEDED, "database statement timed out"
    if isinstance(exc, psycopg.errors.IntegrityError | psycopg.errors.DataError):
        diag = exc.diag
        where = diag.constraint_name or diag.column_name or diag.table_name or exc.sqlstate or "data"
        return grpc.StatusCode.INVALID_ARGUMENT, f"rejected by the database ({where})"
    if isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure):
        return grpc.StatusCode.ABORTED, "concurrent update conflict; retry"
    if isinstance(exc, psycopg.OperationalError):
        return grpc.StatusCode.UNAVAILABLE, "database unavailable"
    return grpc.StatusCode.INTERNAL, "internal error"


def handled(
    rpc_name: str, latency: Histogram | None = None
) -> Callable[[Handler[S, Req, Resp]], Handler[S, Req, Resp]]:
    """Wrap an async RPC method: map exceptions to status codes, log unexpected ones, time it."""

    def decorate(method: Handler[S, Req, Resp]) -> Handler[S, Req, Resp]:
        @functools.wraps(method)
        async def wrapper(self: S, request: Req, context: Context) -> Resp:
            started = time.perf_counter()
            try:
                return await method(self, request, context)
            except Exception as exc:
                code, message = classify(exc)
                if isinstance(exc, DatabaseUnavailableError):
                    # Expected through an outage (once per call): a line, not a traceback.
                    log_event(logger, "rpc_unavailable", logging.WARNING, rpc=rpc_name, detail=str(exc))
                elif code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE):
                    logger.exception("rpc_failed", extra={"rpc": rpc_name, "code": code.name})
                elif code != grpc.StatusCode.NOT_FOUND:
                    log_event(
                        logger,
                        "rpc_rejected",
                        logging.WARNING,
                        rpc=rpc_name,
                        code=code.name,
                        detail=message[:200],
                    )
                error = exc
            finally:
                if latency is not None:
                    latency.labels(rpc_name).observe(time.perf_counter() - started)
            await context.abort(code, message)
            raise error  # pragma: no cover - abort always raises

        return wrapper

    return decorate
