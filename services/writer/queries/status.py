"""GetStatus: database connectivity and the newest race write (rest-api §2.1)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

from services.common.logs import log_event
from services.writer.db import Database

logger = logging.getLogger(__name__)

# Served backwards by race_polls_written_at_idx.
LAST_WRITE_SQL: Final = "SELECT max(written_at) FROM race_polls"
# Health probes have a 500 ms deadline (rest-api §2.1): give up on a busy pool well before that.
STATUS_ACQUIRE_TIMEOUT_S: Final = 0.3


async def get_status(db: Database) -> tuple[bool, datetime | None]:
    """(database connected, newest race write time); never raises for a database failure."""
    try:
        async with db.read_connection(STATUS_ACQUIRE_TIMEOUT_S) as conn:
            cur = await conn.execute(LAST_WRITE_SQL)
            row = await cur.fetchone()
    except Exception as exc:
        log_event(logger, "status_database_unreachable", logging.WARNING, error=type(exc).__name__)
        return False, None
    return True, None if row is None else row[0]
