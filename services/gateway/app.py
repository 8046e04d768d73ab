"""The gateway service as a gRPC app: what `raceday serve gateway` runs."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from services.common.config import Env


class GatewayApp:
    """Registers the gateway's servicers; start-up and clean-up hooks."""

    def __init__(self, env: Env) -> None:
        self._env = env

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        """Add the gateway's servicers (the health service is added by the bootstrap)."""
        return ()

    async def start(self) -> None:
        """Nothing to prepare before reporting SERVING."""

    async def stop(self) -> None:
        """Nothing to release."""


def create_app(env: Env) -> GatewayApp:
    """Build the gateway app from the environment."""
    return GatewayApp(env)
