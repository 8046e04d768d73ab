"""The soak's fault schedule: which fault, when, for how long; a pure function of the seed.

Every kind of fault is scheduled the same number of times (twice in ten minutes), in a shuffled
order, one per slot of the fault window and at a random moment early in its slot, so that a fault
and the recovery from the one before rarely overlap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final, Literal, get_args

FaultKind = Literal[
    "kill_transformer",
    "kill_writer",
    "kill_fetcher",
    "postgres_restart",
    "postgres_outage",
    "tab_5xx",
    "tab_429",
    "tab_slow",
    "tab_truncated",
]
# Every kind, in the order above (the one list is the Literal).
FAULT_KINDS: Final[tuple[FaultKind, ...]] = get_args(FaultKind)
# How long each fault lasts, in real seconds (a SIGKILL and a restart are instants).
DURATION_S: Final[dict[FaultKind, float]] = {
    "kill_transformer": 0.0,
    "kill_writer": 0.0,
    "kill_fetcher": 0.0,
    "postgres_restart": 0.0,
    "postgres_outage": 20.0,
    "tab_5xx": 8.0,
    "tab_429": 8.0,
    "tab_slow": 10.0,
    "tab_truncated": 10.0,
}
WARMUP_S: Final = 45.0  # the stack polls undisturbed first
COOLDOWN_S: Final = 45.0  # and settles at the end, so the last fault's recovery is measured
RECOVERY_ROOM_S: Final = 18.0  # wanted after each fault before the next one
MIN_RECOVERY_ROOM_S: Final = 10.0  # below this the run is too short for its faults


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault: `at_s` real seconds after the start, lasting `duration_s`."""

    at_s: float
    kind: FaultKind
    duration_s: float

    @property
    def ends_s(self) -> float:
        """When the fault is over (its recovery starts)."""
        return self.at_s + self.duration_s


def _window(minutes: float) -> float:
    return minutes * 60 - WARMUP_S - COOLDOWN_S


def repeats_for(minutes: float) -> int:
    """How many times each kind fits in a run of `minutes` (at least once)."""
    one_round = sum(DURATION_S.values()) + len(FAULT_KINDS) * RECOVERY_ROOM_S
    return max(1, int(_window(minutes) // one_round))


def build_schedule(seed: int, minutes: float) -> list[Fault]:
    """The faults of a run of `minutes` with `seed`, in time order. Same inputs, same schedule.

    The fault window is cut into one slot per fault, each as long as its fault plus an equal share
    of the rest; the fault starts at a random moment early in its slot, leaving at least
    RECOVERY_ROOM_S (or all the room there is) before the next slot.
    """
    if minutes < 5:
        raise ValueError(f"a soak needs at least 5 minutes, got {minutes}")
    rng = random.Random(seed)
    kinds = [kind for kind in FAULT_KINDS for _ in range(repeats_for(minutes))]
    rng.shuffle(kinds)
    room = (_window(minutes) - sum(DURATION_S[kind] for kind in kinds)) / len(kinds)
    if room < MIN_RECOVERY_ROOM_S:
        raise ValueError(f"{minutes} minutes leave too little room between faults ({room:.1f} s)")
    faults = []
    start = WARMUP_S
    for kind in kinds:
        jitter = rng.uniform(0, max(0.0, room - RECOVERY_ROOM_S))
        faults.append(Fault(round(start + jitter, 1), kind, DURATION_S[kind]))
        start += DURATION_S[kind] + room
    return faults


def describe(fault: Fault) -> str:
    """One line for the plan and the progress output."""
    length = f" for {fault.duration_s:.0f} s" if fault.duration_s else ""
    return f"{fault.at_s:6.1f} s  {fault.kind}{length}"
