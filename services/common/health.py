"""Client side of the standard grpc.health.v1 service (typed; the stub package's HealthStub is not)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2

from services.common.channels import HEALTH_DEADLINE_S

CHECK_METHOD = "/grpc.health.v1.Health/Check"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def check_health(
    channel: grpc.aio.Channel, service: str = "", deadline_s: float = HEALTH_DEADLINE_S
) -> int:
    """The serving status (a HealthCheckResponse.ServingStatus value) of `service` on `channel`."""
    call = channel.unary_unary(
        CHECK_METHOD,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    response: health_pb2.HealthCheckResponse = await call(
        health_pb2.HealthCheckRequest(service=service), timeout=deadline_s
    )
    return int(response.status)


def check_health_sync(channel: grpc.Channel, service: str = "", timeout: float = HEALTH_DEADLINE_S) -> int:
    """Blocking variant of `check_health`."""
    call = channel.unary_unary(
        CHECK_METHOD,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    response: health_pb2.HealthCheckResponse = call(
        health_pb2.HealthCheckRequest(service=service), timeout=timeout
    )
    return int(response.status)


class NotServingError(RuntimeError):
    """A service did not report SERVING in time, or its process went away while starting."""


async def wait_serving(
    target: str,
    *,
    timeout_s: float,
    gone: Callable[[], str | None] = lambda: None,
    interval_s: float = 0.2,
) -> None:
    """Poll `target`'s health until it reports SERVING.

    `gone` is asked before every attempt and returns why waiting is pointless (the process
    exited), or None. Raises NotServingError with that reason, or when `timeout_s` passes.
    """
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(target) as channel:
        while time.monotonic() < deadline:
            reason = gone()
            if reason is not None:
                raise NotServingError(reason)
            with contextlib.suppress(grpc.aio.AioRpcError):
                if await check_health(channel, deadline_s=1.0) == SERVING:
                    return
            await asyncio.sleep(interval_s)
    raise NotServingError(f"did not report SERVING within {timeout_s:.0f} s")
