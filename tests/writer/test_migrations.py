"""Versioned migrations: applied once, in order, under an advisory lock, with checksums."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from services.writer.db import connect
from services.writer.migrate import MigrationError, apply_migrations, load_migrations, pending_migrations
from services.writer.settings import WriterSettings

SETTINGS = WriterSettings()


async def test_fresh_database_is_migrated_once(fresh_database_url: str) -> None:
    conn = await connect(fresh_database_url, SETTINGS)
    try:
        first = await apply_migrations(conn)
        assert [m.version for m, _ in first.applied] == [m.version for m in load_migrations()]
        assert first.version >= 1
        second = await apply_migrations(conn)
        assert second.applied == ()
        assert second.version == first.version
        assert await pending_migrations(conn) == []
        cur = await conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        assert (await cur.fetchall())[0] == (1, "baseline")
        # Money is bigint cents; the partitioned parents exist without partitions.
        cur = await conn.execute(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
               WHERE column_name IN ('win_pool_total', 'total_race_pool', 'win_pool_amount',
                                     'incremental_win_amount', 'total_prize_money')"""
        )
        assert {row[2] for row in await cur.fetchall()} == {"bigint"}
        cur = await conn.execute(
            "SELECT relname, relkind FROM pg_class WHERE relname IN ('money_flow_history', 'odds_history')"
        )
        assert dict(await cur.fetchall()) == {"money_flow_history": "p", "odds_history": "p"}
        cur = await conn.execute("SELECT count(*) FROM pg_inherits")
        assert (await cur.fetchone()) == (0,)
    finally:
        await conn.close()


async def test_concurrent_runners_apply_each_migration_once(fresh_database_url: str) -> None:
    conns = [await connect(fresh_database_url, SETTINGS) for _ in range(3)]
    try:
        reports = await asyncio.gather(*(apply_migrations(c) for c in conns))
        applied = [m.version for r in reports for m, _ in r.applied]
        assert sorted(applied) == [m.version for m in load_migrations()]
        cur = await conns[0].execute("SELECT count(*) FROM schema_migrations")
        assert (await cur.fetchone()) == (len(load_migrations()),)
    finally:
        for c in conns:
            await c.close()


async def test_an_edited_applied_migration_is_refused(fresh_database_url: str) -> None:
    conn = await connect(fresh_database_url, SETTINGS)
    try:
        await apply_migrations(conn)
        edited = [replace(m, checksum="0" * 64) if m.version == 1 else m for m in load_migrations()]
        with pytest.raises(MigrationError, match="checksum mismatch"):
            await apply_migrations(conn, edited)
    finally:
        await conn.close()


def test_file_names_and_versions_are_checked(tmp_path: Path) -> None:
    (tmp_path / "0001_one.sql").write_text("SELECT 1;")
    (tmp_path / "0001_again.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share version 1"):
        load_migrations(tmp_path)
    (tmp_path / "0001_again.sql").unlink()
    (tmp_path / "2_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


async def test_a_failing_migration_leaves_no_trace(fresh_database_url: str, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good_one (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half_done (id int); SELECT no_such_function();")
    conn = await connect(fresh_database_url, SETTINGS)
    try:
        with pytest.raises(Exception, match="no_such_function"):
            await apply_migrations(conn, load_migrations(tmp_path))
        cur = await conn.execute(
            "SELECT to_regclass('good_one') IS NOT NULL, to_regclass('half_done') IS NOT NULL"
        )
        assert await cur.fetchone() == (True, False)
        cur = await conn.execute("SELECT array_agg(version) FROM schema_migrations")
        assert await cur.fetchone() == ([1],)
    finally:
        await conn.close()
