"""Every stored row of a recorded poll sequence, written by a source tree's own transformer and writer.

The sequence is the open race of tests/transformer/payloads.py (buckets superseded, a start
moved, a scratching and a late scratching, post-start polls, betting closed), then the recorded
Final event as the race's last poll (results, dividends, final pools). A baseline write comes
first and one poll is delivered twice. It goes to `raceday serve transformer` and `raceday serve
writer` processes of a tree, as the fetcher sends it, over the gRPC contract every version of
Raceday speaks; then every table is read back, every column but the bookkeeping instants
(`created_at`, `updated_at`, `written_at`, `committed_at`) that record when a row was written.

    python -m tests.stored_rows --tree DIR --out FILE

records the rows with another checkout's code (DIR holds its `.venv`); the goldens in
tests/fixtures/golden/stored_rows.json came from commit 47f0bbe, the code before the hot path
was rewritten.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from services.common.channels import create_channel
from services.common.database import scratch_database, start_embedded_postgres
from services.common.health import wait_serving
from services.common.net import free_port
from services.common.proto.raceday.v1 import (
    race_pb2,
    transformer_pb2,
    transformer_pb2_grpc,
    writer_pb2,
    writer_pb2_grpc,
)
from services.common.timestamps import timestamp_from_ms
from tests.transformer.payloads import open_race_polls, recorded_document

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "stored_rows.json"
BOOKKEEPING = frozenset({"created_at", "updated_at", "written_at", "committed_at"})
# Each table in a stable order: its key, or the insertion order of the series.
TABLES = {
    "meetings": "meeting_id",
    "races": "race_id",
    "entrants": "entrant_id",
    "money_flow_history": "id",
    "odds_history": "id",
    "race_pools": "race_id",
    "race_results": "race_id",
    "race_polls": "race_id, polled_at",
}
# This delivery's update is written twice, as after a write whose answer was lost.
REDELIVERED = 6
FINAL_AFTER_START_MS = 10 * 60_000


@dataclass(frozen=True, slots=True)
class Delivery:
    """One poll as the writer receives it."""

    payload: bytes
    polled_at_ms: int
    baseline: bool = False


def deliveries() -> list[Delivery]:
    """The poll sequence, in order: a baseline, the open race, the Final poll."""
    polls = open_race_polls()
    sequence = [Delivery(polls[0].payload, polls[0].polled_at_ms - 60_000, baseline=True)]
    sequence += [Delivery(poll.payload, poll.polled_at_ms) for poll in polls]
    final = recorded_document()
    start_s = polls[-1].advertised_start_s
    final["data"]["race"]["advertised_start"] = start_s
    final["data"]["race"]["actual_start"] = start_s + 60
    sequence.append(Delivery(json.dumps(final).encode(), start_s * 1000 + FINAL_AFTER_START_MS))
    return sequence


@asynccontextmanager
async def services(tree: Path, python: Path, database_url: str, logs: Path) -> AsyncIterator[tuple[str, str]]:
    """`raceday serve writer` and `transformer` of `tree`; yields their gRPC targets."""
    processes: list[asyncio.subprocess.Process] = []
    targets: dict[str, str] = {}
    try:
        for service in ("writer", "transformer"):
            port = free_port()
            env = {
                **os.environ,
                "PYTHONPATH": str(tree),
                "RACEDAY_DATABASE_URL": database_url,
                f"RACEDAY_{service.upper()}_PORT": str(port),
                f"RACEDAY_{service.upper()}_METRICS_PORT": str(free_port()),
                "RACEDAY_LOG_LEVEL": "WARNING",
            }
            with (logs / f"{service}.log").open("wb") as log:
                processes.append(
                    await asyncio.create_subprocess_exec(
                        str(python),
                        *("-m", "services.cli", "serve", service),
                        cwd=tree,
                        env=env,
                        stdout=log,
                        stderr=asyncio.subprocess.STDOUT,
                    )
                )
            targets[service] = f"127.0.0.1:{port}"
            await wait_serving(targets[service], timeout_s=60)
        yield targets["writer"], targets["transformer"]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await asyncio.wait_for(process.wait(), timeout=30)


async def write_sequence(writer_target: str, transformer_target: str) -> list[bool]:
    """Send every delivery through Transform and WriteRaceUpdate; the `written` answer of each."""
    writer_channel = create_channel(writer_target)
    transformer_channel = create_channel(transformer_target)
    writer = writer_pb2_grpc.WriterServiceStub(writer_channel)
    transformer = transformer_pb2_grpc.TransformerServiceStub(transformer_channel)
    written: list[bool] = []
    state: race_pb2.RaceState | None = None
    try:
        for index, delivery in enumerate(deliveries()):
            if state is None:
                race_id = json.loads(delivery.payload)["data"]["race"]["event_id"]
                found = await writer.GetRaceState(writer_pb2.GetRaceStateRequest(race_id=race_id), timeout=10)
                state = found.state if found.found else race_pb2.RaceState(race_id=race_id)
            response = await transformer.Transform(
                transformer_pb2.TransformRequest(
                    payload=delivery.payload,
                    polled_at=timestamp_from_ms(delivery.polled_at_ms),
                    prior_state=state,
                ),
                timeout=10,
            )
            request = writer_pb2.WriteRaceUpdateRequest(update=response.update, baseline=delivery.baseline)
            for _ in range(2 if index == REDELIVERED else 1):
                answer = await writer.WriteRaceUpdate(request, timeout=30)
                written.append(answer.written)
            if not delivery.baseline:
                state = response.update.state
    finally:
        await writer_channel.close()
        await transformer_channel.close()
    return written


def _value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def read_tables(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table the write path touches, bookkeeping instants left out."""
    tables: dict[str, list[dict[str, Any]]] = {}
    with psycopg.connect(database_url, options="-c TimeZone=UTC") as conn:
        for table, order in TABLES.items():
            cursor = conn.execute(f"SELECT * FROM {table} ORDER BY {order}")
            names = [column.name for column in cursor.description or ()]
            tables[table] = [
                {
                    name: _value(value)
                    for name, value in zip(names, row, strict=True)
                    if name not in BOOKKEEPING
                }
                for row in cursor.fetchall()
            ]
    return tables


async def record(tree: Path, python: Path, database_url: str) -> dict[str, Any]:
    """Write the sequence with `tree`'s services into the empty database; what was answered and stored."""
    with tempfile.TemporaryDirectory(prefix="raceday-stored-rows-") as logs:
        async with services(tree, python, database_url, Path(logs)) as (writer, transformer):
            written = await write_sequence(writer, transformer)
    return {"written": written, "tables": read_tables(database_url)}


@contextmanager
def _server() -> Iterator[str]:
    url = os.environ.get("RACEDAY_TEST_DATABASE_URL", "").strip()
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="raceday-stored-rows-pg-") as scratch:
        Path(scratch).chmod(0o755)
        yield start_embedded_postgres(Path(scratch) / "data", cleanup_mode="delete")


def main(argv: list[str] | None = None) -> int:
    """Record the stored rows of another checkout (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests.stored_rows", description=__doc__)
    parser.add_argument("--tree", type=Path, required=True, help="a Raceday checkout with its .venv")
    parser.add_argument(
        "--out", type=Path, default=GOLDEN, help=f"where to write the rows (default {GOLDEN})"
    )
    args = parser.parse_args(argv)
    tree = args.tree.resolve()
    python = tree / ".venv" / "bin" / "python"
    if not python.exists():
        print(f"{python} is missing: run `make install` in {tree} first", file=sys.stderr)
        return 2
    with _server() as server, scratch_database(server, "raceday_stored_rows") as database_url:
        rows = asyncio.run(record(tree, python, database_url))
    args.out.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    counts = ", ".join(f"{table} {len(table_rows)}" for table, table_rows in rows["tables"].items())
    print(f"{args.out}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
