"""Client side of the standard grpc.health.v1 service (typed; the stub package's HealthStub is not)."""

from __future__ import annotations

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
