"""Deterministic shapes the simulated race day is drawn with.

Everything here is a pure function of its arguments (seeded hashing, no global
random state), so the same seed and simulated instant give the same numbers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence


def unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) determined by `parts`."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / float(2**64)


def value_noise(key: str, t: float, period_s: float) -> float:
    """Smooth noise in [-1, 1]: seeded knots every `period_s`, eased between them."""
    position = t / period_s
    knot = math.floor(position)
    frac = position - knot
    eased = frac * frac * (3.0 - 2.0 * frac)
    left = unit_hash(key, knot) * 2.0 - 1.0
    right = unit_hash(key, knot + 1) * 2.0 - 1.0
    return left + (right - left) * eased


def pool_fraction(seconds_to_jump: float) -> float:
    """Share of a pool's final total present `seconds_to_jump` before the jump.

    Non-decreasing in time: ~2 % three hours out, ~55 % ten minutes out, then the
    steep late money to 100 % at the jump (and frozen at 100 % afterwards).
    """
    if seconds_to_jump <= 0:
        return 1.0
    minutes = seconds_to_jump / 60.0
    if minutes <= 10.0:
        return 0.55 + 0.45 * math.pow(1.0 - minutes / 10.0, 1.6)
    if minutes <= 180.0:
        return 0.02 + 0.53 * ((180.0 - minutes) / 170.0) ** 2
    return 0.02 * 180.0 / minutes


def half_up(x: float) -> int:
    """R(x) = floor(x + 0.5), the project's rounding rule."""
    return math.floor(x + 0.5)


def round_tenth(x: float) -> float:
    """Half-up rounding to 0.1 (pool dividends are quoted in tenths)."""
    return half_up(x * 10.0) / 10.0


# (upper bound, tick) pairs of a bookmaker's price ladder.
_LADDER: tuple[tuple[float, float], ...] = (
    (2.0, 0.02),
    (3.0, 0.05),
    (5.0, 0.1),
    (10.0, 0.2),
    (20.0, 0.5),
    (50.0, 1.0),
    (100.0, 5.0),
    (math.inf, 10.0),
)


def ladder_price(x: float) -> float:
    """Snap a fair price to the fixed-odds ladder (prices move in whole ticks)."""
    x = max(x, 1.01)
    for bound, tick in _LADDER:
        if x <= bound:
            ticks = half_up(x / tick)
            return round(ticks * tick, 2)
    raise AssertionError("unreachable: the ladder ends at infinity")


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split the integer `total` in proportion to `weights` (largest remainder, ties by index)."""
    if total <= 0 or not weights:
        return [0] * len(weights)
    weight_sum = sum(w for w in weights if w > 0)
    if weight_sum <= 0:
        return [0] * len(weights)
    exact = [max(w, 0.0) * total / weight_sum for w in weights]
    floors = [math.floor(e) for e in exact]
    short = total - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:short]:
        floors[i] += 1
    return floors
