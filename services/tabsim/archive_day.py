"""An archived NZ racing day served as the simulated TAB (`raceday tabsim --archive URL --date D`).

The raw-payload archive (migrations/0003_poll_archive.sql) holds every event payload the
fetcher received, with its poll time. At the simulated instant t, an event is answered with
the payload of its latest archived poll at or before t (before its first poll: the first), byte
for byte as the TAB meant it; the meetings list is built from those same payloads (meeting and
race fields of `data.race`), so it agrees with the events at every instant. The archive's own
instants are the day's time: the simulated clock starts at the first archived poll unless
--now or --offset-s says otherwise.

The day's compressed payloads are loaded into memory once (each distinct payload once; about
the archive's stored bytes of the day, see README "Archive and replay") and inflated on request.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

import psycopg

from services.common.payload_archive import unpack

NS_PER_MS: Final = 1_000_000
_CACHE: Final = 64


@dataclass(slots=True)
class ArchivedRace:
    """One race's archived polls, in poll order."""

    race_id: str
    polled_at_ns: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    # data.race of the first and the last payload (meeting fields, number, name, start, status).
    first: dict[str, Any] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)


class ArchivedDay:
    """The archived polls of one NZ racing day, answerable by instant."""

    def __init__(self, day: date, races: dict[str, ArchivedRace], frames: dict[bytes, tuple[bytes, int]]):
        self.day = day
        self.races = races
        self._frames = frames
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()

    @classmethod
    def load(cls, database_url: str, day: date) -> ArchivedDay:
        """Read the day from the archive (ValueError when it holds no poll of that day)."""
        with psycopg.connect(database_url, options="-c TimeZone=UTC") as conn:
            frames = {
                bytes(digest): (bytes(frame), int(size))
                for digest, frame, size in conn.execute(
                    "SELECT payload_hash, zstd_payload, raw_bytes FROM archive_payloads "
                    "WHERE racing_day = %s",
                    (day,),
                )
            }
            polls = conn.execute(
                "SELECT race_id, polled_at, payload_hash FROM archive_polls WHERE racing_day = %s "
                "ORDER BY race_id, polled_at",
                (day,),
            ).fetchall()
        if not polls:
            raise ValueError(f"the archive holds no poll of NZ day {day.isoformat()}")
        archived = cls(day, {}, frames)
        for race_id, polled_at, digest in polls:
            race = archived.races.setdefault(race_id, ArchivedRace(race_id))
            race.polled_at_ns.append(int(polled_at.timestamp() * 1000) * NS_PER_MS)
            race.payloads.append(bytes(digest))
        for race in archived.races.values():
            race.first = archived._race_fields(race.payloads[0])
            race.last = archived._race_fields(race.payloads[-1])
        return archived

    def _race_fields(self, digest: bytes) -> dict[str, Any]:
        try:
            document = json.loads(self.payload(digest))
            race = document["data"]["race"]
        except (ValueError, KeyError, TypeError):
            return {}
        return race if isinstance(race, dict) else {}

    @property
    def first_poll_ns(self) -> int:
        """The instant of the day's first archived poll."""
        return min(race.polled_at_ns[0] for race in self.races.values())

    def payload(self, digest: bytes) -> bytes:
        """An archived payload, uncompressed (checked against its address)."""
        raw = self._cache.get(digest)
        if raw is None:
            frame, size = self._frames[digest]
            raw = unpack(frame, size, digest)
            self._cache[digest] = raw
            if len(self._cache) > _CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(digest)
        return raw

    def event_at(self, race_id: str, now_ns: int) -> bytes | None:
        """The race's payload polled last at or before `now_ns` (before: its first); None if unknown."""
        race = self.races.get(race_id)
        if race is None:
            return None
        index = max(0, bisect.bisect_right(race.polled_at_ns, now_ns) - 1)
        return self.payload(race.payloads[index])

    def meetings_at(self, now_ns: int) -> list[dict[str, Any]]:
        """`data.meetings` at `now_ns`, from the archived payloads' race fields."""
        meetings: dict[str, dict[str, Any]] = {}
        for race in sorted(self.races.values(), key=lambda r: (str(r.first.get("meeting_id")), _number(r))):
            fields = self._fields_at(race, now_ns)
            meeting_id = fields.get("meeting_id")
            if not meeting_id:
                continue
            meeting = meetings.setdefault(
                str(meeting_id),
                {
                    "meeting": meeting_id,
                    "name": fields.get("meeting_name") or fields.get("display_meeting_name") or "",
                    "date": f"{fields.get('race_date_nz') or self.day.isoformat()}T00:00:00Z",
                    "track_condition": fields.get("track_condition"),
                    "category": fields.get("type"),
                    "category_name": _CATEGORY_NAMES.get(str(fields.get("type")), ""),
                    "country": fields.get("country"),
                    "state": fields.get("state"),
                    "video_channels": [],
                    "races": [],
                },
            )
            start = fields.get("advertised_start")
            meeting["races"].append(
                {
                    "id": race.race_id,
                    "race_number": fields.get("race_number"),
                    "name": fields.get("description") or fields.get("name") or "",
                    "start_time": (
                        datetime.fromtimestamp(int(start), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                        if isinstance(start, int | float)
                        else None
                    ),
                    "track_condition": fields.get("track_condition"),
                    "distance": fields.get("distance"),
                    "weather": fields.get("weather"),
                    "country": fields.get("country"),
                    "state": fields.get("state"),
                    "status": fields.get("status"),
                }
            )
        return list(meetings.values())

    def _fields_at(self, race: ArchivedRace, now_ns: int) -> dict[str, Any]:
        index = bisect.bisect_right(race.polled_at_ns, now_ns) - 1
        if index <= 0:
            return race.first
        if index == len(race.payloads) - 1:
            return race.last
        return self._race_fields(race.payloads[index])


_CATEGORY_NAMES: Final = {
    "T": "Thoroughbred Horse Racing",
    "H": "Harness Horse Racing",
    "G": "Greyhound Racing",
}


def _number(race: ArchivedRace) -> int:
    value = race.first.get("race_number")
    return value if isinstance(value, int) else 0
