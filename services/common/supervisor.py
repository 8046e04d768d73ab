"""Run and supervise child processes: `raceday up` and the end-to-end tests use it.

A child that exits while the supervisor is running is restarted with
exponential backoff (1 s, 2 s, 4 s ... up to 30 s; reset after a minute of
healthy running), and each crash and restart is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from services.common.logs import log_event

logger = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0


@dataclass(slots=True)
class ProcessSpec:
    """How to start one child."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path | None = None


@dataclass(slots=True)
class SupervisedProcess:
    """One child and its restart history."""

    spec: ProcessSpec
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        """The current child's pid, if running."""
        return self.process.pid if self.process and self.process.returncode is None else None

    async def _spawn(self) -> None:
        stdout: int | IO[bytes] | None = None
        if self.spec.log_path is not None:
            self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            if self._log is None:
                self._log = self.spec.log_path.open("ab")
            stdout = self._log
        self.process = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            env=dict(self.spec.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=asyncio.subprocess.STDOUT if stdout is not None else None,
            start_new_session=True,
        )
        self.started_at = time.monotonic()

    async def start(self) -> None:
        """Start the child and keep it running until `stop()`."""
        await self._spawn()
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        backoff = BACKOFF_INITIAL_S
        while True:
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            if time.monotonic() - self.started_at > HEALTHY_AFTER_S:
                backoff = BACKOFF_INITIAL_S
            log_event(
                logger,
                "process_exited",
                logging.ERROR,
                child=self.spec.name,
                exit_code=code,
                restart_in_s=backoff,
            )
            await asyncio.sleep(backoff)
            if self._stopping:
                return
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            await self._spawn()
            self.restarts += 1
            log_event(logger, "process_restarted", child=self.spec.name, restarts=self.restarts, pid=self.pid)

    async def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, wait up to `grace_s`, then SIGKILL. Returns the exit code."""
        self._stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode if process is not None else None


class Supervisor:
    """A set of supervised children, stopped in reverse start order."""

    def __init__(self) -> None:
        self.children: dict[str, SupervisedProcess] = {}
        self._order: list[str] = []

    async def start(self, spec: ProcessSpec) -> SupervisedProcess:
        """Start one child under supervision."""
        child = SupervisedProcess(spec)
        await child.start()
        self.children[spec.name] = child
        self._order.append(spec.name)
        log_event(logger, "process_started", child=spec.name, pid=child.pid)
        return child

    async def stop(self, grace_s: float = 10.0) -> dict[str, int | None]:
        """Stop every child, last started first; returns their exit codes."""
        codes: dict[str, int | None] = {}
        for name in reversed(self._order):
            codes[name] = await self.children[name].stop(grace_s)
        return codes
