"""The transformer service as a gRPC app: what `raceday serve transformer` runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc

import raceday_core
from services.common.config import Env
from services.common.logs import log_event
from services.transformer.service import SERVICE_NAME, TransformerService, add_transformer_servicer
from services.transformer.settings import TransformerSettings

logger = logging.getLogger(__name__)


class TransformerApp:
    """Registers TransformerService; owns the threads the Rust extension runs on, if any."""

    def __init__(self, env: Env) -> None:
        self.settings = TransformerSettings.from_env(env)
        self._executor = (
            ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="raceday-transform")
            if self.settings.workers
            else None
        )

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        """Add TransformerService (the health service is added by the bootstrap)."""
        add_transformer_servicer(TransformerService(self._executor), server)
        return (SERVICE_NAME,)

    async def start(self) -> None:
        """Nothing to prepare: the extension is loaded on import. Log what is serving."""
        log_event(
            logger,
            "transformer_ready",
            engine_version=raceday_core.version(),
            workers=self.settings.workers,
        )

    async def stop(self) -> None:
        """Release the worker threads once in-flight transforms have finished."""
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)


def create_app(env: Env) -> TransformerApp:
    """Build the transformer app from the environment (ConfigError on bad settings)."""
    return TransformerApp(env)
