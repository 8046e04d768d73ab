"""Writer fixtures: a migrated database per test (cloned from a template), an open Database,
and a real grpc.aio server on loopback serving WriterService and QueryService."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc
import pytest

from services.common.database import database_name, scratch_database
from services.common.proto.raceday.v1 import query_pb2_grpc, writer_pb2_grpc
from services.writer.db import Database, connect
from services.writer.maintenance import PartitionMaintainer
from services.writer.migrate import apply_migrations
from services.writer.query_servicer import QueryServicer
from services.writer.servicer import WriterServicer, add_writer_servicer
from services.writer.settings import WriterSettings

TEST_SETTINGS = WriterSettings(write_pool_size=6, read_pool_size=3, acquire_timeout_s=10.0)


@pytest.fixture(scope="session")
async def migrated_template(pg_server_url: str) -> AsyncIterator[str]:
    """A database migrated once per session, cloned for each test (CREATE DATABASE ... TEMPLATE).

    Dropped when the session ends, so runs against a shared server leave nothing behind.
    """
    with scratch_database(pg_server_url, "raceday_writer_tmpl") as url:
        conn_async = await connect(url, TEST_SETTINGS)
        try:
            await apply_migrations(conn_async)
        finally:
            await conn_async.close()
        yield database_name(url)


@pytest.fixture
def migrated_database_url(pg_server_url: str, migrated_template: str) -> Iterator[str]:
    """A new database with the full schema (no partitions), owned by this test."""
    with scratch_database(pg_server_url, "raceday_writer", template=migrated_template) as url:
        yield url


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[Database]:
    """An open Database (write and read pools, maintenance connection) on the test's database."""
    database = Database(TEST_SETTINGS)
    await database.open(migrated_database_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def maintainer(db: Database) -> PartitionMaintainer:
    """The partition routines on the test database's maintenance connection."""
    return PartitionMaintainer(db)


@dataclass
class Stubs:
    """Clients of the writer's two services over a real loopback channel."""

    writer: writer_pb2_grpc.WriterServiceAsyncStub
    query: query_pb2_grpc.QueryServiceAsyncStub


@pytest.fixture
async def stubs(db: Database, maintainer: PartitionMaintainer) -> AsyncIterator[Stubs]:
    """A grpc.aio server on 127.0.0.1 serving both services over `db`."""
    server = grpc.aio.server()
    add_writer_servicer(WriterServicer(db, maintainer), server)
    query_pb2_grpc.add_QueryServiceServicer_to_server(QueryServicer(db), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Stubs(
            writer=writer_pb2_grpc.WriterServiceStub(channel),
            query=query_pb2_grpc.QueryServiceStub(channel),
        )
    finally:
        await channel.close()
        await server.stop(0)
