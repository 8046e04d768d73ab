"""The gateway's gRPC clients: the writer's QueryService for data, health probes for the rest.

Every call carries a deadline; failures become `ApiError`s with the contract's status codes, so
a handler never sees a gRPC exception and a stopped writer yields a 503 rather than a hang.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, TypeVar, cast

import grpc
from google.protobuf.message import Message

from services.common.channels import create_channel
from services.common.logs import log_event
from services.common.proto.raceday.v1 import query_pb2_grpc
from services.gateway.cache import SingleFlight
from services.gateway.errors import ApiError, from_rpc_error
from services.gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

QUERY_SERVICE: Final = "raceday.v1.QueryService"

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


class Backend:
    """Channels to the writer, transformer and fetcher, opened in the running event loop."""

    def __init__(self, settings: GatewaySettings) -> None:
        clients = settings.clients
        self.deadline_s = settings.deadline_s
        # The query RPCs are reads or keyed upserts, so retrying on UNAVAILABLE is safe.
        self.writer_channel = create_channel(
            clients.writer_addr, lb_policy=clients.lb_policy, retry_services=(QUERY_SERVICE,)
        )
        self.transformer_channel = create_channel(clients.transformer_addr, lb_policy=clients.lb_policy)
        self.fetcher_channel = create_channel(clients.fetcher_addr, lb_policy=clients.lb_policy)
        self.query = query_pb2_grpc.QueryServiceStub(self.writer_channel)
        self._reads: SingleFlight[Message] = SingleFlight()
        # Called when the writer is unreachable, so /health stops serving a stale "healthy".
        self.on_unavailable: Callable[[], None] | None = None

    async def call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        not_found: str = "Not found",
        coalesce: bool = True,
    ) -> Resp:
        """Call a writer RPC with the gateway deadline; gRPC failures become ApiErrors.

        Reads (`coalesce`) share one call among identical concurrent requests.
        """
        if not coalesce:
            return await self._call(method, request, not_found)
        key = (type(request).__name__, request.SerializeToString(deterministic=True), not_found)
        result = await self._reads.run(key, lambda: self._call(method, request, not_found))
        return cast(Resp, result)

    async def _call(
        self, method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], request: Req, not_found: str
    ) -> Resp:
        try:
            return await method(request, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc, "writer", not_found)
            if error.status in (503, 504) and self.on_unavailable is not None:
                self.on_unavailable()
            if error.status >= 500:
                log_event(
                    logger,
                    "backend_call_failed",
                    logging.WARNING,
                    service="writer",
                    rpc=type(request).__name__.removesuffix("Request"),
                    code=exc.code().name,
                    detail=(exc.details() or "")[:200],
                )
            raise error from None

    async def close(self) -> None:
        """Close every channel."""
        for channel in (self.writer_channel, self.transformer_channel, self.fetcher_channel):
            await channel.close()


__all__ = ["ApiError", "Backend"]
