"""Race pools (rest-api §2.10) and race results (§2.11)."""

from __future__ import annotations

import json
from typing import Final

from services.common.proto.raceday.v1 import race_pb2
from services.writer.convert import set_fields
from services.writer.db import Database
from services.writer.queries.rows import fetch_found, require_id

POOLS_SQL: Final = """
SELECT race_id, win_pool_total, place_pool_total, quinella_pool_total, trifecta_pool_total,
       exacta_pool_total, first4_pool_total, total_race_pool, currency, extracted_pools,
       data_quality_score, source, last_updated
FROM race_pools WHERE race_id = %(race_id)s
"""

RESULTS_SQL: Final = """
SELECT race_id, results_available, results_data, dividends_data, fixed_odds_data, result_status,
       photo_finish, stewards_inquiry, protest_lodged, result_time, created_at, updated_at
FROM race_results WHERE race_id = %(race_id)s
"""


async def get_pools(db: Database, race_id: str) -> race_pb2.RacePools:
    """The race's pool totals; NotFoundError when the race or its pools are unknown."""
    require_id(race_id, "race_id")
    row = await fetch_found(db, POOLS_SQL, {"race_id": race_id}, "Pool data not found")
    pools = race_pb2.RacePools()
    set_fields(pools, row)
    return pools


async def get_results(db: Database, race_id: str) -> race_pb2.RaceResults:
    """The race's results, dividends and flags; NotFoundError when none are stored."""
    require_id(race_id, "race_id")
    row = await fetch_found(db, RESULTS_SQL, {"race_id": race_id}, "Race results not found")
    results = race_pb2.RaceResults()
    documents = {
        "results_data_json": row.pop("results_data"),
        "dividends_data_json": row.pop("dividends_data"),
        "fixed_odds_data_json": row.pop("fixed_odds_data"),
    }
    set_fields(results, row)
    for name, document in documents.items():
        if document is not None:
            setattr(results, name, json.dumps(document, separators=(",", ":")))
    return results
