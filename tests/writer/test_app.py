"""The writer process: start-up (migrations, partitions, pools) before SERVING, both services
served on one port, configuration validated; and the `raceday migrate|partitions|bench write`
commands run as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import grpc
import psycopg
import pytest

from services.common.config import ConfigError, Env
from services.common.health import SERVING, check_health
from services.common.nztime import nz_today
from services.common.proto.raceday.v1 import query_pb2, query_pb2_grpc, writer_pb2, writer_pb2_grpc
from services.common.server import start_server
from services.common.settings import ServerSettings
from services.writer.app import QUERY_SERVICE, WRITER_SERVICE, create_app
from services.writer.db import Database
from services.writer.maintenance import PartitionMaintainer
from services.writer.migrate import MigrationError, load_migrations
from services.writer.query_servicer import QueryServicer
from services.writer.servicer import WriterServicer, add_writer_servicer
from services.writer.settings import WriterSettings

RACEDAY = Path(sys.executable).parent / "raceday"


def _env(url: str, **extra: str) -> Env:
    return Env(
        {
            "RACEDAY_DATABASE_URL": url,
            "RACEDAY_DB_WRITE_POOL_SIZE": "2",
            "RACEDAY_DB_READ_POOL_SIZE": "2",
            **extra,
        }
    )


def _server_settings() -> ServerSettings:
    return ServerSettings(
        service="writer",
        bind_host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        log_level="INFO",
        grace_seconds=1.0,
    )


async def test_start_up_prepares_the_database_before_serving(fresh_database_url: str) -> None:
    app = create_app(_env(fresh_database_url))
    running, metrics = await start_server(app, _server_settings(), with_metrics=False)
    try:
        assert set(running.services) == {WRITER_SERVICE, QUERY_SERVICE}
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            for name in ("", WRITER_SERVICE, QUERY_SERVICE):
                assert await check_health(channel, name, deadline_s=5) == SERVING
            status = await query_pb2_grpc.QueryServiceStub(channel).GetStatus(query_pb2.GetStatusRequest())
            assert status.database_connected
            state = await writer_pb2_grpc.WriterServiceStub(channel).GetRaceState(
                writer_pb2.GetRaceStateRequest(race_id="none")
            )
            assert not state.found
        with psycopg.connect(fresh_database_url) as conn:
            names_of_sessions = {
                r[0]
                for r in conn.execute(
                    "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
                )
            }
            assert "raceday-writer" in names_of_sessions
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
            assert versions == [m.version for m in load_migrations()]
            names = {
                r[0]
                for r in conn.execute(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                )
            }
            jobs = conn.execute("SELECT job, status FROM job_runs").fetchall()
        today = nz_today()
        assert names >= {
            f"{t}_{d:%Y_%m_%d}"
            for t in ("money_flow_history", "odds_history", "archive_polls", "archive_payloads")
            for d in (today, today + timedelta(days=1))
        }
        assert ("partitions", "succeeded") in jobs
    finally:
        await running.server.stop(0)
        await app.stop()
        assert metrics is None


async def test_start_up_refuses_a_schema_behind_when_not_migrating(fresh_database_url: str) -> None:
    app = create_app(_env(fresh_database_url, RACEDAY_WRITER_MIGRATE_ON_START="false"))
    with pytest.raises(MigrationError, match="raceday migrate"):
        await app.start()
    await app.stop()


async def test_without_a_database_status_reports_disconnected_and_calls_are_unavailable() -> None:
    db = Database(WriterSettings())  # never opened: every acquisition fails
    server = grpc.aio.server()
    add_writer_servicer(WriterServicer(db, PartitionMaintainer(db)), server)
    query_pb2_grpc.add_QueryServiceServicer_to_server(QueryServicer(db), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            status = await query_pb2_grpc.QueryServiceStub(channel).GetStatus(query_pb2.GetStatusRequest())
            assert not status.database_connected
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await writer_pb2_grpc.WriterServiceStub(channel).GetRaceState(
                    writer_pb2.GetRaceStateRequest(race_id="r")
                )
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PARTITION_MAINTENANCE_AT", "02:30"),
        ("PARTITION_MAINTENANCE_AT", "4am"),
        ("RETENTION_DAYS", "0"),
        ("RACEDAY_DB_WRITE_POOL_SIZE", "many"),
        ("RACEDAY_DATABASE_URL", "mysql://x"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    env = {"RACEDAY_DATABASE_URL": "postgresql://localhost/x", name: value}
    with pytest.raises(ConfigError) as failure:
        create_app(Env(env))
    assert failure.value.name == name


def _run(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RACEDAY_DATABASE_URL": url, "RETENTION_DAYS": "30"}
    return subprocess.run(
        [str(RACEDAY), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_migrate_and_partitions_commands(fresh_database_url: str) -> None:
    unmigrated = _run(["partitions"], fresh_database_url)
    assert unmigrated.returncode == 1 and "raceday migrate" in unmigrated.stderr
    first = _run(["migrate"], fresh_database_url)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_baseline" in first.stdout
    second = _run(["migrate"], fresh_database_url)
    assert second.returncode == 0 and "schema up to date at version" in second.stdout
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE odds_history_2020_01_01 PARTITION OF odds_history "
            "FOR VALUES FROM ('2020-01-01 00:00:00+13') TO ('2020-01-02 00:00:00+13')"
        )
        conn.execute(
            "CREATE TABLE archive_polls_2020_01_01 PARTITION OF archive_polls "
            "FOR VALUES FROM ('2020-01-01') TO ('2020-01-02')"
        )
    listed = _run(["partitions", "--retention"], fresh_database_url)
    assert listed.returncode == 0, listed.stderr
    today = nz_today()
    assert f"created money_flow_history_{today:%Y_%m_%d}" in listed.stdout
    assert "dropped odds_history_2020_01_01" in listed.stdout
    assert f"odds_history_{today + timedelta(days=1):%Y_%m_%d}" in listed.stdout
    # The raw-payload archive's partitions too, with their own retention (ARCHIVE_RETENTION_DAYS).
    assert "dropped archive_polls_2020_01_01" in listed.stdout
    assert f"archive_payloads_{today + timedelta(days=1):%Y_%m_%d}" in listed.stdout
    assert "archive retention: kept NZ dates from" in listed.stdout
    assert "8 partitions" in listed.stdout


def test_bench_write_prices_move_detection(pg_server_url: str) -> None:
    result = _run(
        [
            "bench",
            "write",
            "--updates",
            "3",
            "--warmup",
            "1",
            "--max-median-ms",
            "0",
            "--moves",
            "--max-moves-cost-ms",
            "0",
        ],
        pg_server_url,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    series = {line.split()[0]: line for line in lines if line.startswith(("with_moves ", "without "))}
    assert set(series) == {"with_moves", "without"}, result.stdout
    # The polls with moves create alerts; the same polls without them create none.
    assert "alerts created per write 0.0" in series["without"]
    assert "alerts created per write 0.0" not in series["with_moves"]
    assert any(line.startswith("move detection costs") for line in lines), result.stdout
    assert any(line.startswith("move computation: raceday_core.moves takes") for line in lines), result.stdout


def _bench_databases(pg_server_url: str) -> set[str]:
    with psycopg.connect(pg_server_url) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'raceday_bench_%'").fetchall()
    return {row[0] for row in rows}


def test_bench_write_runs_and_reports(pg_server_url: str) -> None:
    # Other benchmarks may share the server (RACEDAY_TEST_DATABASE_URL): only this run's scratch
    # database must be gone afterwards.
    before = _bench_databases(pg_server_url)
    result = _run(
        ["bench", "write", "--updates", "3", "--warmup", "1", "--max-median-ms", "0"], pg_server_url
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = {
        line.split()[0]: line.split()[1:] for line in lines if line.startswith(("first_poll", "next_poll"))
    }
    # 16 runners: meeting, race, 16 entrants, 16 money-flow rows and 64 odds rows on a first poll.
    assert set(rows) == {"first_poll", "next_poll"} and rows["first_poll"][4] == "98", result.stdout
    assert any(line.startswith("PostgreSQL CPU per write") for line in lines), result.stdout
    assert any(line.startswith("yardstick: the Python reference takes") for line in lines), result.stdout
    assert _bench_databases(pg_server_url) <= before
