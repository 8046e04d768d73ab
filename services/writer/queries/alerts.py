"""Alert configuration (rest-api §2.13): six percentage-range indicators per user.

Stored rows are merged with the defaults on every read; a read never writes. A default's
indicator_id is uuid5(DEFAULT_INDICATOR_NAMESPACE, "<user_id>:<display_order>"), so it is
stable across calls and processes. Saves upsert by (user_id, display_order) in one
transaction; reset deletes the stored indicators and keeps the audible flag.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from services.common.proto.raceday.v1 import query_pb2
from services.writer.convert import set_fields
from services.writer.db import Database
from services.writer.errors import InvalidArgumentError

# Fixed once, never to change: the namespace of the default indicators' version-5 UUIDs.
DEFAULT_INDICATOR_NAMESPACE: Final = uuid.UUID("6f1d2c3b-8a4e-5b7f-9c0d-1e2f3a4b5c6d")
DEFAULT_USER: Final = "Default User"
MAX_USER_ID_LENGTH: Final = 100
INDICATOR_TYPE: Final = "percentage_range"
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True, slots=True)
class DefaultIndicator:
    """One row of the defaults table."""

    display_order: int
    minimum: float
    maximum: float | None
    color: str


DEFAULTS: Final = (
    DefaultIndicator(1, 5, 10, "#E5E7EB"),
    DefaultIndicator(2, 10, 15, "#BFDBFE"),
    DefaultIndicator(3, 15, 20, "#FEF3C7"),
    DefaultIndicator(4, 20, 25, "#BBF7D0"),
    DefaultIndicator(5, 25, 50, "#FECACA"),
    DefaultIndicator(6, 50, None, "#F3E8FF"),
)

SELECT_SQL: Final = """
SELECT indicator_id::text AS indicator_id, user_id, indicator_type, percentage_range_min,
       percentage_range_max, color, is_default, enabled, display_order, created_at, updated_at
FROM user_alert_configs WHERE user_id = %(user_id)s ORDER BY display_order
"""
AUDIBLE_SQL: Final = "SELECT audible_alerts_enabled FROM user_alert_settings WHERE user_id = %(user_id)s"
ID_TAKEN_SQL: Final = """
SELECT 1 FROM user_alert_configs
WHERE indicator_id = %(indicator_id)s AND (user_id, display_order) <> (%(user_id)s, %(display_order)s)
"""
UPSERT_SQL: Final = """
INSERT INTO user_alert_configs AS t (indicator_id, user_id, indicator_type, percentage_range_min,
                                     percentage_range_max, color, is_default, enabled, display_order)
VALUES (COALESCE(%(indicator_id)s::uuid, gen_random_uuid()), %(user_id)s, %(indicator_type)s, %(min)s,
        %(max)s, %(color)s, %(is_default)s, %(enabled)s, %(display_order)s)
ON CONFLICT (user_id, display_order) DO UPDATE SET
    indicator_type = EXCLUDED.indicator_type,
    percentage_range_min = EXCLUDED.percentage_range_min,
    percentage_range_max = EXCLUDED.percentage_range_max,
    color = EXCLUDED.color,
    is_default = EXCLUDED.is_default,
    enabled = EXCLUDED.enabled,
    updated_at = now()
"""
AUDIBLE_UPSERT_SQL: Final = """
INSERT INTO user_alert_settings AS t (user_id, audible_alerts_enabled) VALUES (%(user_id)s, %(audible)s)
ON CONFLICT (user_id) DO UPDATE
SET audible_alerts_enabled = EXCLUDED.audible_alerts_enabled, updated_at = now()
WHERE t.audible_alerts_enabled IS DISTINCT FROM EXCLUDED.audible_alerts_enabled
"""
RESET_SQL: Final = "DELETE FROM user_alert_configs WHERE user_id = %(user_id)s"


def normalise_user(user_id: str) -> str:
    """Trimmed user id; empty means the default user; more than 100 characters is refused."""
    user = user_id.strip()
    if len(user) > MAX_USER_ID_LENGTH:
        raise InvalidArgumentError(f"user_id must be at most {MAX_USER_ID_LENGTH} characters")
    return user or DEFAULT_USER


def default_indicator_id(user_id: str, display_order: int) -> str:
    """The deterministic id of a default indicator."""
    return str(uuid.uuid5(DEFAULT_INDICATOR_NAMESPACE, f"{user_id}:{display_order}"))


def _default(user_id: str, spec: DefaultIndicator) -> query_pb2.AlertIndicator:
    indicator = query_pb2.AlertIndicator(
        indicator_id=default_indicator_id(user_id, spec.display_order),
        user_id=user_id,
        indicator_type=INDICATOR_TYPE,
        percentage_range_min=spec.minimum,
        color=spec.color,
        is_default=True,
        enabled=True,
        display_order=spec.display_order,
    )
    if spec.maximum is not None:
        indicator.percentage_range_max = spec.maximum
    return indicator


async def _read(conn: AsyncConnection[Any], user_id: str) -> query_pb2.AlertConfig:
    params = {"user_id": user_id}
    cur = conn.cursor(row_factory=dict_row)
    async with conn.pipeline():
        await cur.execute(SELECT_SQL, params)
        audible_cur = await conn.execute(AUDIBLE_SQL, params)
    stored = {row["display_order"]: row for row in await cur.fetchall()}
    audible_row = await audible_cur.fetchone()
    config = query_pb2.AlertConfig(
        user_id=user_id, audible_alerts_enabled=True if audible_row is None else bool(audible_row[0])
    )
    for spec in DEFAULTS:
        row = stored.get(spec.display_order)
        if row is None:
            config.indicators.append(_default(user_id, spec))
            continue
        indicator = query_pb2.AlertIndicator()
        set_fields(indicator, {**row, "color": str(row["color"]).upper()})
        config.indicators.append(indicator)
    return config


async def get_alert_config(db: Database, user_id: str) -> query_pb2.AlertConfig:
    """Six indicators (stored merged with defaults) and the audible flag; no side effects."""
    user = normalise_user(user_id)
    async with db.read_connection() as conn:
        return await _read(conn, user)


def _validate(user: str, index: int, indicator: query_pb2.AlertIndicator) -> dict[str, Any]:
    def bad(field: str, reason: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"indicators[{index}].{field}: {reason}")

    if indicator.user_id.strip() and indicator.user_id.strip() != user:
        raise InvalidArgumentError("All indicators must target the same user_id")
    indicator_type = indicator.indicator_type.strip().lower() or INDICATOR_TYPE
    if indicator_type != INDICATOR_TYPE:
        raise bad("indicator_type", "must be percentage_range")
    if not 1 <= indicator.display_order <= 6:
        raise bad("display_order", "must be an integer 1..6")
    minimum = indicator.percentage_range_min
    if not 0 <= minimum <= 100:
        raise bad("percentage_range_min", "must be a number 0..100")
    maximum = indicator.percentage_range_max if indicator.HasField("percentage_range_max") else None
    if maximum is not None and not (maximum <= 100 and maximum > minimum):
        raise bad("percentage_range_max", "must be at most 100 and greater than percentage_range_min")
    if not _COLOR.match(indicator.color):
        raise bad("color", "must be #RRGGBB")
    requested: str | None = None
    if indicator.indicator_id:
        try:
            requested = str(uuid.UUID(indicator.indicator_id))
        except ValueError:
            requested = None  # only a UUID is honoured as a requested id
    return {
        "indicator_id": requested,
        "user_id": user,
        "indicator_type": INDICATOR_TYPE,
        "min": minimum,
        "max": maximum,
        "color": indicator.color.upper(),
        "is_default": indicator.is_default,
        "enabled": indicator.enabled,
        "display_order": indicator.display_order,
    }


async def save_alert_config(
    db: Database, user_id: str, indicators: list[query_pb2.AlertIndicator], audible: bool | None
) -> query_pb2.AlertConfig:
    """Upsert indicators by (user, display order) and the audible flag, in one transaction."""
    user = normalise_user(user_id)
    if not 1 <= len(indicators) <= 6:
        raise InvalidArgumentError("indicators array is required (1 to 6 indicators)")
    rows = [_validate(user, i, indicator) for i, indicator in enumerate(indicators)]
    orders = [r["display_order"] for r in rows]
    duplicates = sorted({o for o in orders if orders.count(o) > 1})
    if duplicates:
        raise InvalidArgumentError(f"Duplicate display_order {duplicates[0]}")
    async with db.read_connection() as conn:
        async with conn.transaction():
            for row in rows:
                if row["indicator_id"] is not None:
                    taken = await conn.execute(ID_TAKEN_SQL, row)
                    if await taken.fetchone() is not None:
                        row["indicator_id"] = None  # taken by another row: a new id is generated
                await conn.execute(UPSERT_SQL, row)
            if audible is not None:
                await conn.execute(AUDIBLE_UPSERT_SQL, {"user_id": user, "audible": audible})
        return await _read(conn, user)


async def reset_alert_config(db: Database, user_id: str) -> query_pb2.AlertConfig:
    """Remove the user's stored indicators (defaults apply again); the audible flag stays."""
    user = normalise_user(user_id)
    async with db.read_connection() as conn:
        await conn.execute(RESET_SQL, {"user_id": user})
        return await _read(conn, user)
