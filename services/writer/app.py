"""The writer service as a gRPC app: what `raceday serve writer` runs.

Start-up, before the service reports SERVING: resolve the database (RACEDAY_DATABASE_URL
or the embedded server), apply migrations (or, with RACEDAY_WRITER_MIGRATE_ON_START=false,
verify none is pending), ensure today's and tomorrow's NZ partitions, open the pools, and
start the nightly maintenance task. The process serves WriterService and QueryService.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import grpc

from services.common.clock import Clock
from services.common.config import Env
from services.common.database import configured_database_url, database_url
from services.common.logs import log_event
from services.common.proto.raceday.v1 import query_pb2, query_pb2_grpc, writer_pb2
from services.writer.changes import ChangeFeed
from services.writer.db import Database, connect
from services.writer.maintenance import PartitionMaintainer
from services.writer.migrate import MigrationError, apply_migrations, pending_migrations
from services.writer.query_servicer import QueryServicer
from services.writer.servicer import WriterServicer, add_writer_servicer
from services.writer.settings import WriterSettings

logger = logging.getLogger(__name__)

WRITER_SERVICE = writer_pb2.DESCRIPTOR.services_by_name["WriterService"].full_name
QUERY_SERVICE = query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name


class WriterApp:
    """Registers WriterService and QueryService; start-up prepares the database."""

    def __init__(self, env: Env) -> None:
        self._env = env
        self.settings = WriterSettings.from_env(env)
        configured_database_url(env)  # validate the URL now, connect in start()
        # Servicers exist before start(); until the database is open their calls answer UNAVAILABLE
        # (the bootstrap reports SERVING only after start()).
        self.db = Database(self.settings)
        self.maintainer = PartitionMaintainer(self.db)
        self.changes = ChangeFeed(self.db)
        # The simulated clock under `raceday up --sim-speed`, for the data age measured at commit.
        self._writer = WriterServicer(self.db, self.maintainer, self.changes, Clock.from_env(env))
        self._query = QueryServicer(self.db)

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        """Add WriterService and QueryService (the health service is added by the bootstrap)."""
        add_writer_servicer(self._writer, server)
        query_pb2_grpc.add_QueryServiceServicer_to_server(self._query, server)
        return (WRITER_SERVICE, QUERY_SERVICE)

    async def start(self) -> None:
        """Migrations, today's and tomorrow's partitions, pools, nightly maintenance."""
        url = await asyncio.to_thread(database_url, self._env)
        conn = await connect(url, self.settings)
        try:
            if self.settings.migrate_on_start:
                report = await apply_migrations(conn)
                log_event(
                    logger,
                    "schema_ready",
                    version=report.version,
                    applied=[f"{m.version:04d}_{m.name}" for m, _ in report.applied],
                )
            else:
                pending = await pending_migrations(conn)
                if pending:
                    raise MigrationError(
                        "schema is behind: pending migrations "
                        + ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
                        + " (run `raceday migrate`)"
                    )
        finally:
            await conn.close()
        self.db.bind(url)
        try:
            await self.maintainer.run(retention=False)
            await self.db.open()
        except BaseException:
            await self.db.close()
            raise
        self.maintainer.start_nightly()
        self.changes.start()

    async def stop(self) -> None:
        """Stop the nightly task and the change feed, close every connection."""
        await self.changes.stop()
        await self.maintainer.stop()
        await self.db.close()


def create_app(env: Env) -> WriterApp:
    """Build the writer app from the environment (raises ConfigError on bad settings)."""
    return WriterApp(env)
