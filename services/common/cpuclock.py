"""The CPU time another process on this machine has used, for benchmarks that attribute CPU per process.

Read from the process's own CPU clock (`clock_getcpuclockid(pid)`, nanoseconds, every thread of
the process), or from /proc/<pid>/stat where that clock cannot be had (utime + stime in clock
ticks, 10 ms each: too coarse for a few polls, fine for many).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

NS_PER_S = 1_000_000_000


def _load_clock_getcpuclockid() -> Callable[[int, Any], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        function = libc.clock_getcpuclockid
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    function.restype = ctypes.c_int
    loaded: Callable[[int, Any], int] = function
    return loaded


_CLOCK_GETCPUCLOCKID = _load_clock_getcpuclockid()


# Larger pids do not fit the clock id (it would wrap to this process's own clock); Linux's are smaller.
_MAX_PID = 1 << 28


def _clock_ns(pid: int) -> int | None:
    if _CLOCK_GETCPUCLOCKID is None or not 0 < pid < _MAX_PID:
        return None
    clock_id = ctypes.c_int()
    if _CLOCK_GETCPUCLOCKID(pid, ctypes.byref(clock_id)) != 0:
        return None
    try:
        return time.clock_gettime_ns(clock_id.value)
    except OSError:
        return None


def _proc_stat_ns(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return ticks * NS_PER_S // os.sysconf("SC_CLK_TCK")


def process_cpu_ns(pid: int) -> int | None:
    """User + system CPU the process `pid` has used so far (ns), or None when it is not readable here."""
    if not 0 < pid < _MAX_PID:
        return None
    value = _clock_ns(pid)
    return value if value is not None else _proc_stat_ns(pid)


def processes_cpu_ns(pids: Iterable[int]) -> dict[int, int]:
    """`process_cpu_ns` of each pid that could be read (processes gone or elsewhere are left out)."""
    readings: dict[int, int] = {}
    for pid in pids:
        value = process_cpu_ns(pid)
        if value is not None:
            readings[pid] = value
    return readings


def cpu_used_ns(before: Mapping[int, int], after: Mapping[int, int]) -> int:
    """CPU used between two readings of a group of processes.

    A process read only after (started in between) counts from zero; one read only before (ended in
    between) counts nothing, as its last CPU cannot be read any more.
    """
    return sum(max(0, value - before.get(pid, 0)) for pid, value in after.items())
