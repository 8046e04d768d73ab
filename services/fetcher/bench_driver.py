"""The fetcher side of `raceday bench pipeline`: poll loops, and a driver process any tree can run.

`raceday bench pipeline` runs these loops in its own process. `raceday bench pipeline --compare REV`
runs this file as a script under each tree's own interpreter (`python -P .../bench_driver.py`), so
the `services` it imports, the TAB client and the pipeline it measures, are that tree's. It must
therefore use only what the code at the oldest compared commit (47f0bbe) already had: the imports
below, and `RacePipeline.from_channels` only when the tree has it.

The driver reads one JSON command per line on stdin and answers one JSON line on stdout:
`{"op": "setup", "day": "YYYY-MM-DD"}` (the day's meetings to the writer; answers the race ids),
`{"op": "prefetch", "races": [...]}` (fetch only), `{"op": "first", "races": [...]}`,
`{"op": "rounds", "races": [...], "rounds": N}`, `{"op": "saturate", "races": [...], "seconds": S}`,
`{"op": "quit"}`. Answers carry {"ok": true, ...} or {"ok": false, "error": "..."}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import date
from typing import TYPE_CHECKING, Any

import uvloop

from services.common.channels import create_channel
from services.common.clock import Clock
from services.common.config import Env
from services.common.proto.raceday.v1 import transformer_pb2_grpc, writer_pb2, writer_pb2_grpc
from services.fetcher.meetings import meeting_with_races
from services.fetcher.pipeline import PollResult, RacePipeline, StageDeadlines
from services.fetcher.tab_client import TabClient
from services.fetcher.tab_results import FetchFailure
from services.fetcher.tab_settings import TabSettings

if TYPE_CHECKING:
    import grpc

    from services.common.proto.raceday.v1.writer_pb2_grpc import WriterServiceAsyncStub

FETCH_BUDGET_S = 10.0
BENCH_IDENTIFICATION = {
    "NZTAB_FROM": "bench@localhost",
    "NZTAB_PARTNER": "Raceday bench",
    "NZTAB_PARTNER_ID": "bench",
}


def tab_settings(tab_url: str) -> TabSettings:
    """The TAB client's settings for the simulated TAB at `tab_url`."""
    return TabSettings.from_env(Env({**BENCH_IDENTIFICATION, "NZTAB_BASE_URL": tab_url}))


def make_pipeline(
    tab: TabClient, transformer_channel: grpc.aio.Channel, writer_channel: grpc.aio.Channel
) -> RacePipeline:
    """The tree's pipeline over these channels: `from_channels` where it exists, else the older
    constructor that took the service stubs (47f0bbe)."""
    if hasattr(RacePipeline, "from_channels"):
        return RacePipeline.from_channels(
            tab, transformer_channel, writer_channel, clock=Clock(), deadlines=StageDeadlines()
        )
    legacy: Any = RacePipeline
    pipeline: RacePipeline = legacy(
        tab,
        transformer_pb2_grpc.TransformerServiceStub(transformer_channel),
        writer_pb2_grpc.WriterServiceStub(writer_channel),
        clock=Clock(),
        deadlines=StageDeadlines(),
    )
    return pipeline


async def race_ids(tab: TabClient, writer: WriterServiceAsyncStub, day: date) -> list[str]:
    """The day's meetings from the TAB, upserted through the writer; the ids of their races."""
    fetched = await tab.fetch_meetings(day)
    if isinstance(fetched, FetchFailure):
        raise RuntimeError(f"the simulated TAB's meetings failed: {fetched.kind} {fetched.message}")
    request = writer_pb2.UpsertMeetingsRequest()
    for item in fetched.meetings:
        converted = meeting_with_races(item)
        if converted is not None:
            request.meetings.append(converted)
    await writer.UpsertMeetings(request, timeout=30.0)
    return [race.race_id for entry in request.meetings for race in entry.races]


async def first_polls(pipeline: RacePipeline, races: list[str]) -> tuple[list[PollResult], list[float]]:
    """Each race's first poll, one at a time (no cached state, every odds row new); the polls and
    each one's wall time in ms."""
    polls: list[PollResult] = []
    round_ms: list[float] = []
    for race in races:
        started = time.perf_counter()
        polls.append(await pipeline.poll(race, fetch_budget_s=FETCH_BUDGET_S))
        round_ms.append((time.perf_counter() - started) * 1000)
    return polls, round_ms


async def batch_rounds(
    pipeline: RacePipeline, races: list[str], rounds: int
) -> list[tuple[list[PollResult], float]]:
    """`rounds` rounds that poll all `races` concurrently; each round's polls and wall time in ms."""
    measured: list[tuple[list[PollResult], float]] = []
    for _ in range(rounds):
        started = time.perf_counter()
        results = await asyncio.gather(
            *(pipeline.poll(race, fetch_budget_s=FETCH_BUDGET_S) for race in races)
        )
        measured.append((list(results), (time.perf_counter() - started) * 1000))
    return measured


async def saturate(
    pipeline: RacePipeline, races: list[str], seconds: float
) -> tuple[list[PollResult], float]:
    """One poller per race, each polling its race again as soon as the last poll ends, for `seconds`;
    the polls and the wall time in seconds until the last of them ended."""
    polls: list[PollResult] = []
    started = time.perf_counter()
    deadline = started + seconds

    async def poller(race: str) -> None:
        while time.perf_counter() < deadline:
            polls.append(await pipeline.poll(race, fetch_budget_s=FETCH_BUDGET_S))

    await asyncio.gather(*(poller(race) for race in races))
    return polls, time.perf_counter() - started


def poll_record(poll: PollResult) -> dict[str, Any]:
    """What the comparison needs of one poll, as JSON."""
    return {
        "race_id": poll.race_id,
        "outcome": poll.outcome,
        "failed_stage": poll.failed_stage,
        "failure": f"{poll.failure_kind} {poll.message}".strip(),
        "timings_ms": {stage: round(ms, 4) for stage, ms in poll.timings_ms.items()},
        "rows": dict(poll.rows),
    }


class _Driver:
    def __init__(self, tab: TabClient, pipeline: RacePipeline, writer: WriterServiceAsyncStub) -> None:
        self.tab = tab
        self.pipeline = pipeline
        self.writer = writer

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command.get("op")
        races = [str(race) for race in command.get("races", [])]
        if op == "setup":
            return {"races": await race_ids(self.tab, self.writer, date.fromisoformat(command["day"]))}
        if op == "prefetch":
            failed = 0
            for race in races:
                fetched = await self.tab.fetch_event(race, budget_s=FETCH_BUDGET_S)
                failed += isinstance(fetched, FetchFailure)
            return {"failed": failed}
        if op == "first":
            polls, round_ms = await first_polls(self.pipeline, races)
            return {"polls": [poll_record(poll) for poll in polls], "round_ms": round_ms}
        if op == "rounds":
            measured = await batch_rounds(self.pipeline, races, int(command["rounds"]))
            return {
                "polls": [poll_record(poll) for polls, _ in measured for poll in polls],
                "round_ms": [ms for _, ms in measured],
            }
        if op == "saturate":
            polls, elapsed_s = await saturate(self.pipeline, races, float(command["seconds"]))
            return {"polls": [poll_record(poll) for poll in polls], "elapsed_s": elapsed_s}
        raise ValueError(f"unknown op {op!r}")


async def _serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    async with TabClient(tab_settings(args.tab)) as tab:
        transformer_channel = create_channel(args.transformer)
        writer_channel = create_channel(args.writer)
        driver = _Driver(
            tab,
            make_pipeline(tab, transformer_channel, writer_channel),
            writer_pb2_grpc.WriterServiceStub(writer_channel),
        )
        print(json.dumps({"ok": True, "ready": True}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            if command.get("op") == "quit":
                break
            try:
                answer = {"ok": True, **await driver.handle(command)}
            except Exception as exc:
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
        await transformer_channel.close()
        await writer_channel.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Serve driver commands on stdin/stdout until `quit` or end of input."""
    parser = argparse.ArgumentParser(description="raceday bench pipeline driver (one tree's fetcher side)")
    parser.add_argument("--tab", required=True, help="the simulated TAB's base URL")
    parser.add_argument("--transformer", required=True, help="the transformer's gRPC target")
    parser.add_argument("--writer", required=True, help="the writer's gRPC target")
    return uvloop.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
