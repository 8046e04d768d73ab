"""The money-flow timeline envelope of rest-api.md §2.12, with its interval-coverage summary.

The writer selects the documents (one per entrant and effective bucket); paging fields and the
coverage summary are computed here from exactly the documents being returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from services.common.nztime import format_nz
from services.common.proto.raceday.v1 import query_pb2
from services.common.timestamps import ts_to_datetime
from services.gateway.serialize import timeline_document

# The critical five-minute window: columns 5, 4, 3, 2, 1 and 0 (the start).
CRITICAL_INTERVALS: Final[tuple[int, ...]] = (5, 4, 3, 2, 1, 0)
FULL_COVERAGE: Final = "Full coverage of critical 5-minute window"
MISSING_COVERAGE: Final = "Missing coverage in critical 5-minute window"
NO_DOCUMENTS: Final = "No documents to analyze"


def interval_coverage(documents: Sequence[query_pb2.TimelineDocument]) -> dict[str, Any]:
    """Per-entrant intervals covered and the critical intervals each one lacks."""
    by_entrant: dict[str, set[int]] = {}
    counts: dict[str, int] = {}
    for doc in documents:
        by_entrant.setdefault(doc.entrant_id, set()).add(doc.time_interval)
        counts[doc.entrant_id] = counts.get(doc.entrant_id, 0) + 1
    entrants: list[dict[str, Any]] = []
    gaps: list[dict[str, Any]] = []
    for entrant_id, intervals in by_entrant.items():
        covered = [value for value in CRITICAL_INTERVALS if value in intervals]
        missing = [value for value in CRITICAL_INTERVALS if value not in intervals]
        entrants.append(
            {
                "entrant_id": entrant_id,
                "document_count": counts[entrant_id],
                "intervals_covered": sorted(intervals, reverse=True),
                "critical_period_coverage": covered,
                "missing_critical_intervals": missing,
            }
        )
        if missing:
            gaps.append({"entrant_id": entrant_id, "missing_intervals": missing})
    if not documents:
        report = NO_DOCUMENTS
    elif gaps:
        report = MISSING_COVERAGE
    else:
        report = FULL_COVERAGE
    all_intervals = {doc.time_interval for doc in documents}
    return {
        "summary": {
            "total_documents": len(documents),
            "entrants_covered": len(by_entrant),
            "intervals_covered": sorted(all_intervals, reverse=True),
            "critical_period_gaps": gaps,
            "coverage_report": report,
        },
        "entrants": entrants,
    }


def timeline_envelope(
    response: query_pb2.GetMoneyFlowTimelineResponse,
    *,
    race_id: str,
    pool_type: str,
    limit: int,
    created_after: datetime | None,
) -> dict[str, Any]:
    """The 200 body: documents ordered by their stable id, paging cursors and coverage."""
    documents = sorted(response.documents, key=lambda doc: doc.id)
    newest = max((ts_to_datetime(doc.created_at) for doc in documents), default=None)
    envelope: dict[str, Any] = {
        "success": True,
        "documents": [timeline_document(doc) for doc in documents],
        "total": len(documents),
        "race_id": race_id,
        "entrant_ids": list(response.entrant_ids),
        "pool_type": pool_type,
        "bucketed_data": True,
        "interval_coverage": interval_coverage(documents),
        # A full page may have more behind it; a short page is the end.
        "next_cursor": str(documents[-1].id) if documents and len(documents) >= limit else None,
        "next_created_at": format_nz(newest) if newest is not None else None,
        "limit": limit,
        "created_after": format_nz(created_after) if created_after is not None else None,
        "query_optimizations": [],
    }
    if not documents:
        envelope["message"] = "No timeline data available yet"
    return envelope
