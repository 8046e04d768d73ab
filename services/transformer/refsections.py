"""Reading the sections of a TAB event payload for the reference transform.

Race, runners, money tracker (§3), pool totals (§2) and results (§10), each read leniently:
optional members degrade with a finding, required ones raise PayloadSchemaError.
"""

from __future__ import annotations

import math
from typing import Any, Final

from raceday_core.errors import PayloadSchemaError
from services.common.series_kinds import ODDS_TYPES
from services.common.status import normalise_status
from services.transformer.records import (
    EntrantRecord,
    MeetingRecord,
    PoolsRecord,
    PriorState,
    RaceRecord,
    ResultsRecord,
)
from services.transformer.refjson import (
    I32_MAX,
    MISSING,
    PRODUCTS,
    Findings,
    array_or_empty,
    as_number,
    flag,
    is_missing,
    kind,
    member,
    object_or_none,
    odds_hundredths,
    opt_epoch_ms,
    opt_int,
    opt_text,
    product_index,
    req_int,
    req_object,
    req_text,
    text_or_empty,
)
from services.transformer.refmath import (
    MAX_EPOCH_S,
    is_iso_date,
    parse_rfc3339_ms,
    round_half_up,
)

MAX_POOL_DOLLARS: Final = 1e11
MAX_TRACKER_PERCENT: Final = 100.0
_CATEGORY_NAMES: Final = {
    "T": "Thoroughbred Horse Racing",
    "H": "Harness Horse Racing",
    "G": "Greyhound Racing",
}


def generated_time(root: dict[str, Any], out: Findings) -> int | None:
    """header.generated_time in epoch ms, or None (with a finding when unparsable)."""
    header = member(root, "header")
    if object_or_none("header", header, out) is None:
        return None
    value = member(header, "generated_time")
    if is_missing(value):
        return None
    if isinstance(value, str):
        ms = parse_rfc3339_ms(value)
        if ms is None:
            out.invalid("header.generated_time: expected an RFC 3339 time")
        return ms
    out.invalid(f"header.generated_time: expected string, got {kind(value)}")
    return None


def _dollars_to_cents(path: str, v: object, out: Findings) -> int | None:
    x = as_number(v)
    if x is not None:
        if 0.0 <= x <= MAX_POOL_DOLLARS:
            return round_half_up(x * 100)
        out.invalid(f"{path}: number out of range")
        return None
    if not is_missing(v):
        out.invalid(f"{path}: expected number, got {kind(v)}")
    return None


def read_race(value: object, out: Findings) -> tuple[RaceRecord, str]:
    """The race record and the meeting name from data.race (required fields raise)."""
    race = req_object("data.race", value)
    race_id = req_text("data.race.event_id", member(race, "event_id"))
    meeting_id = req_text("data.race.meeting_id", member(race, "meeting_id"))
    adv = req_int("data.race.advertised_start", member(race, "advertised_start"), 0, MAX_EPOCH_S)
    raw_number = member(race, "race_number")
    if is_missing(raw_number):
        out.invalid("data.race.race_number: missing")
        race_number = 0
    else:
        race_number = opt_int("data.race.race_number", raw_number, 0, I32_MAX, out) or 0
    meeting_name = text_or_empty("data.race.meeting_name", member(race, "meeting_name"), out)
    name = text_or_empty("data.race.description", member(race, "description"), out)
    raw_status = member(race, "status")
    status_raw: str | None = None
    if isinstance(raw_status, str):
        status_raw = raw_status
        status: str = normalise_status(raw_status)
    else:
        if not is_missing(raw_status):
            out.invalid(f"data.race.status: expected string, got {kind(raw_status)}")
        status = "unknown"
    if status == "unknown":
        message = "race status is missing" if status_raw is None else f'unknown race status "{status_raw}"'
        out.add("unknown_status", "warning", message)
    actual_start = opt_epoch_ms("data.race.actual_start", member(race, "actual_start"), MAX_EPOCH_S, out)
    raw_date = member(race, "race_date_nz")
    # Like the extension, leave a missing or invalid date absent: engine.run_transform derives it
    # after either engine has run, from services/common/nztime (the one NZ calendar).
    race_date_nz: str | None = None
    if isinstance(raw_date, str) and is_iso_date(raw_date):
        race_date_nz = raw_date
    elif not is_missing(raw_date):
        got = "a string that is not YYYY-MM-DD" if isinstance(raw_date, str) else kind(raw_date)
        out.invalid(f"data.race.race_date_nz: expected YYYY-MM-DD, got {got}")

    def text(key: str, path_key: str | None = None) -> str | None:
        return opt_text(f"data.race.{path_key or key}", member(race, key), out)

    def integer(key: str) -> int | None:
        return opt_int(f"data.race.{key}", member(race, key), 0, I32_MAX, out)

    start_time_nz = text("start_time_nz")
    tote_start_time = text("tote_start_time")
    race_type = text("type")
    country = text("country")
    state = text("state")
    distance = integer("distance")
    track_condition = text("track_condition")
    track_surface = text("track_surface")
    track_direction = text("track_direction")
    weather = text("weather")
    rail_position = text("rail_position")
    race_class = text("class")
    entrant_count = integer("entrant_count")
    field_size = integer("field_size")
    positions_paid = integer("positions_paid")
    prize = member(race, "prize_monies")
    total_prize_money = None
    if object_or_none("data.race.prize_monies", prize, out) is not None:
        total_prize_money = _dollars_to_cents(
            "data.race.prize_monies.total_value", member(prize, "total_value"), out
        )
    silk_url = text("silk_url")
    silk_base_url = text("silk_base_url")
    video_channels: list[str] = []
    channels = array_or_empty("data.race.video_channels", member(race, "video_channels"), out)
    for i, item in enumerate(channels):
        if isinstance(item, str):
            video_channels.append(item)
        else:
            out.invalid(f"data.race.video_channels[{i}]: expected string, got {kind(item)}")
    record: RaceRecord = {
        "race_id": race_id,
        "meeting_id": meeting_id,
        "race_number": race_number,
        "name": name,
        "status": status,
        "status_raw": status_raw,
        "start_time": adv * 1000,
        "actual_start": actual_start,
        "race_date_nz": race_date_nz,
        "start_time_nz": start_time_nz,
        "tote_start_time": tote_start_time,
        "type": race_type,
        "country": country,
        "state": state,
        "distance": distance,
        "track_condition": track_condition,
        "track_surface": track_surface,
        "track_direction": track_direction,
        "weather": weather,
        "rail_position": rail_position,
        "race_class": race_class,
        "entrant_count": entrant_count,
        "field_size": field_size,
        "positions_paid": positions_paid,
        "total_prize_money": total_prize_money,
        "silk_url": silk_url,
        "silk_base_url": silk_base_url,
        "video_channels": video_channels,
    }
    return record, meeting_name


def meeting_record(race: RaceRecord, meeting_name: str) -> MeetingRecord:
    """A minimal meeting derived from the race (§8.3)."""
    return {
        "meeting_id": race["meeting_id"],
        "meeting_name": meeting_name,
        "date": race["race_date_nz"],
        "country": race["country"] or "",
        "state": race["state"],
        "category": race["type"] or "",
        "category_name": _CATEGORY_NAMES.get(race["type"] or ""),
        "track_condition": race["track_condition"],
        "weather": race["weather"],
    }


def finite_document(path: str, value: object) -> None:
    """Documents kept for storage must not hold infinities (jsonb rejects them)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise PayloadSchemaError(f"{path}: number out of range")
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())


class Runner:
    """A runner kept from the payload, with its normalised odds (hundredths)."""

    def __init__(self, record: EntrantRecord, odds: tuple[int | None, ...]) -> None:
        self.record = record
        self.odds = odds

    @property
    def entrant_id(self) -> str:
        """The runner's entrant id."""
        return self.record["entrant_id"]

    @property
    def scratched(self) -> bool:
        """Scratched or late-scratched in this payload."""
        return self.record["is_scratched"] or self.record["is_late_scratched"]


def odds_value(h: int | None) -> float | None:
    """The stored odds of a hundredths value (None stays None)."""
    return None if h is None else h / 100


def read_runners(value: object, race_id: str, out: Findings) -> list[Runner]:
    """The runners kept from data.runners (malformed ones dropped with `invalid_runner`)."""
    runners: list[Runner] = []
    items = array_or_empty("data.runners", value, out)
    seen: set[str] = set()
    for i, r in enumerate(items):
        p = f"data.runners[{i}]"
        if not isinstance(r, dict):
            out.add("invalid_runner", "warning", f"{p}: expected object, got {kind(r)}")
            continue
        try:
            entrant_id = req_text(f"{p}.entrant_id", r.get("entrant_id", MISSING))
            runner_number = req_int(f"{p}.runner_number", r.get("runner_number", MISSING), 0, I32_MAX)
        except PayloadSchemaError as e:
            out.add("invalid_runner", "warning", str(e))
            continue
        if entrant_id in seen:
            out.add("invalid_runner", "warning", f"{p}.entrant_id: duplicate of an earlier runner")
            continue
        seen.add(entrant_id)
        odds_obj = r.get("odds", MISSING)
        if object_or_none(f"{p}.odds", odds_obj, out) is not None:
            odds = tuple(odds_hundredths(member(odds_obj, t)) for t in ODDS_TYPES)
        else:
            odds = (None, None, None, None)
        runner_change = r.get("runner_change")
        finite_document(f"{p}.runner_change", runner_change)

        def text(key: str, r: dict[str, Any] = r, p: str = p) -> str | None:
            return opt_text(f"{p}.{key}", r.get(key, MISSING), out)

        def boolean(key: str, r: dict[str, Any] = r, p: str = p) -> bool:
            return flag(f"{p}.{key}", r.get(key, MISSING), out)

        record: EntrantRecord = {
            "entrant_id": entrant_id,
            "race_id": race_id,
            "runner_number": runner_number,
            "name": text_or_empty(f"{p}.name", r.get("name", MISSING), out),
            "barrier": opt_int(f"{p}.barrier", r.get("barrier", MISSING), 0, I32_MAX, out),
            "barrier_position": text("barrier_position"),
            "jockey": text("jockey"),
            "trainer_name": text("trainer_name"),
            "silk_colours": text("silk_colours"),
            "silk_url_64x64": text("silk_url_64x64"),
            "silk_url_128x128": text("silk_url_128x128"),
            "is_scratched": boolean("is_scratched"),
            "is_late_scratched": boolean("is_late_scratched"),
            "scratch_time": opt_epoch_ms(
                f"{p}.scratch_time", r.get("scratch_time", MISSING), MAX_EPOCH_S, out
            ),
            "favourite": boolean("favourite"),
            "mover": boolean("mover"),
            "runner_change": runner_change,
            "fixed_win_odds": odds_value(odds[0]),
            "fixed_place_odds": odds_value(odds[1]),
            "pool_win_odds": odds_value(odds[2]),
            "pool_place_odds": odds_value(odds[3]),
            "has_money_flow": False,
            "hold_percentage": None,
            "bet_percentage": None,
            "win_pool_percentage": None,
            "place_pool_percentage": None,
            "win_pool_amount": None,
            "place_pool_amount": None,
            "money_flow_at": None,
        }
        runners.append(Runner(record, odds))
    return runners


class Tracker:
    """The money tracker summed per entrant id (§3)."""

    def __init__(self) -> None:
        self.rows = 0
        self.invalid_rows = 0
        self.hold: dict[str, float] = {}
        self.bet: dict[str, float] = {}
        self.unknown_ids = 0


def _tracker_value(v: object) -> float | None:
    x = as_number(v)
    return x if x is not None and 0.0 <= x <= MAX_TRACKER_PERCENT else None


def read_tracker(value: object, runners: list[Runner], out: Findings) -> Tracker | None:
    """The money tracker summed per entrant id (§3), or None without one."""
    if object_or_none("data.money_tracker", value, out) is None:
        return None
    tracker = Tracker()
    rows = array_or_empty("data.money_tracker.entrants", member(value, "entrants"), out)
    tracker.rows = len(rows)
    for row in rows:
        entrant_id = member(row, "entrant_id")
        if not isinstance(row, dict) or not isinstance(entrant_id, str) or not entrant_id:
            tracker.invalid_rows += 1
            continue
        hold = _tracker_value(row.get("hold_percentage", MISSING))
        bet = _tracker_value(row.get("bet_percentage", MISSING))
        if hold is None or bet is None:
            tracker.invalid_rows += 1
        tracker.hold[entrant_id] = tracker.hold.get(entrant_id, 0.0) + (hold or 0.0)
        tracker.bet[entrant_id] = tracker.bet.get(entrant_id, 0.0) + (bet or 0.0)
    runner_ids = {r.entrant_id for r in runners}
    tracker.unknown_ids = sum(1 for entrant_id in tracker.hold if entrant_id not in runner_ids)
    return tracker


def read_pools(
    tote_pools: object, dividends: object, *, race_id: str, polled_at: int, prior: PriorState, out: Findings
) -> PoolsRecord | None:
    """Pool totals in cents from tote_pools, else from dividends (§2), or None."""
    found: list[int | None] = [None] * 6
    rows = array_or_empty("data.tote_pools", tote_pools, out)
    if rows:
        source = "tote_pools"
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                out.invalid(f"data.tote_pools[{i}]: expected object, got {kind(row)}")
                continue
            name = row.get("product_type")
            product = product_index(name) if isinstance(name, str) else None
            if product is None:
                continue
            path = f"data.tote_pools[{i}].total"
            raw = row.get("total", MISSING)
            x = as_number(raw)
            if x is None:
                if not is_missing(raw):
                    out.invalid(f"{path}: expected number, got {kind(raw)}")
                x = 0.0
            elif not 0.0 <= x <= MAX_POOL_DOLLARS:
                raise PayloadSchemaError(f"{path}: number out of range")
            cents = round_half_up(x * 100)
            previous = found[product]
            if previous is not None:
                out.add(
                    "duplicate_pool",
                    "warning",
                    f"{PRODUCTS[product]} appears more than once in tote_pools; the larger total is kept",
                )
                found[product] = max(previous, cents)
            else:
                found[product] = cents
    elif isinstance(dividends, list) and dividends:
        source = "dividends"
        best: list[float | None] = [None] * 6
        for i, d in enumerate(dividends):
            name = member(d, "product_name")
            product = product_index(name) if isinstance(name, str) else None
            size = as_number(member(d, "pool_size"))
            if product is None or size is None:
                continue
            if size > MAX_POOL_DOLLARS:
                raise PayloadSchemaError(f"data.dividends[{i}].pool_size: number out of range")
            current = best[product]
            if size > 0 and (current is None or size > current):
                best[product] = size
        for product, size in enumerate(best):
            if size is not None:
                found[product] = round_half_up(size * 100)
    else:
        return None
    extracted = sum(1 for f in found if f is not None)
    if extracted == 0:
        return None
    t = [f or 0 for f in found]
    score = 100 if source == "tote_pools" else 90
    if t[0] == 0 or t[1] == 0:
        score -= 30
    previous_pools = prior["pools"]
    last_updated = polled_at
    if previous_pools is not None and totals(previous_pools) == t:
        last_updated = previous_pools["last_updated"]
    return {
        "race_id": race_id,
        "win_pool_total": t[0],
        "place_pool_total": t[1],
        "quinella_pool_total": t[2],
        "trifecta_pool_total": t[3],
        "exacta_pool_total": t[4],
        "first4_pool_total": t[5],
        "total_race_pool": sum(t),
        "currency": "$",
        "extracted_pools": extracted,
        "data_quality_score": max(score, 0),
        "source": source,
        "last_updated": last_updated,
    }


def totals(p: PoolsRecord) -> list[int]:
    """The six product totals in the order of PRODUCTS."""
    return [p[f"{name}_pool_total"] for name in PRODUCTS]  # type: ignore[literal-required]


def _object_items(path: str, value: object, out: Findings) -> list[dict[str, Any]]:
    items = array_or_empty(path, value, out)
    kept: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            finite_document(f"{path}[{i}]", item)
            kept.append(item)
        else:
            out.invalid(f"{path}[{i}]: expected object, got {kind(item)}")
    return kept


def _int64(v: object) -> int | None:
    if isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63:
        return v
    return None


def read_results(
    results_value: object,
    dividends_value: object,
    *,
    runners: list[Runner],
    race_id: str,
    status: str,
    polled_at: int,
    prior: PriorState,
    out: Findings,
) -> ResultsRecord | None:
    """Results, dividends, fixed-odds snapshot and flags (§10), or None without any."""
    results = _object_items("data.results", results_value, out)
    dividends = _object_items("data.dividends", dividends_value, out)
    if not results and not dividends:
        return None

    def sort_key(item: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int]]:
        def part(name: str) -> tuple[int, int]:
            v = _int64(item.get(name))
            return (1, 0) if v is None else (0, v)

        return part("position"), part("runner_number")

    results_data = sorted(results, key=sort_key)
    statuses = [s.lower() for d in dividends if isinstance(s := d.get("status"), str)]
    photo_finish = prior["photo_finish"] or any("photo" in s for s in statuses)
    stewards_inquiry = prior["stewards_inquiry"] or any("inquiry" in s or "enquiry" in s for s in statuses)
    protest_lodged = prior["protest_lodged"] or prior["protest"] or any("protest" in s for s in statuses)

    def product(d: dict[str, Any]) -> str | None:
        name = d.get("product_name")
        return name if isinstance(name, str) else None

    final_products = {product(d) for d in dividends if d.get("status") == "Final"}
    dividends_data = [d for d in dividends if product(d) not in final_products or d.get("status") == "Final"]
    fixed_odds_data: dict[str, Any] = {}
    for runner in runners:
        if runner.scratched:
            continue
        fixed_odds_data[str(runner.record["runner_number"])] = {
            "entrant_id": runner.entrant_id,
            "runner_name": runner.record["name"],
            "fixed_win_odds": odds_value(runner.odds[0]),
            "fixed_place_odds": odds_value(runner.odds[1]),
        }
    if status == "final":
        result_status = "final"
    elif protest_lodged:
        result_status = "protest"
    else:
        result_status = "interim"
    result_time = polled_at
    if prior["result_status"] == result_status and prior["result_time"] is not None:
        result_time = prior["result_time"]
    return {
        "race_id": race_id,
        "results_available": bool(results_data),
        "results_data": results_data,
        "dividends_data": dividends_data,
        "fixed_odds_data": fixed_odds_data,
        "result_status": result_status,
        "photo_finish": photo_finish,
        "stewards_inquiry": stewards_inquiry,
        "protest_lodged": protest_lodged,
        "result_time": result_time,
    }
