"""`raceday transform PAYLOAD.json --at INSTANT`: what Raceday makes of one captured payload.

Runs the Rust extension (the same code the service runs) and prints the update as one
JSON object. Errors print one line on stderr: exit 2 for bad input (missing file, bad
--at, malformed payload or state), 1 for anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from raceday_core.errors import PayloadError
from services.transformer.documents import (
    DocumentError,
    ms_from_iso,
    state_document,
    state_from_document,
    update_document,
)
from services.transformer.engine import one_line, run_transform
from services.transformer.records import PriorState, empty_state

INPUT_ERROR = 2
OUTPUT_ERROR = 1
PROG = "raceday transform"

_EPILOG = """\
instants:
  --at and every instant in a state file are ISO-8601 with an explicit offset
  (2025-07-17T00:40:00Z, 2025-07-17T12:40:00+12:00). Output instants are UTC with
  milliseconds (2025-07-17T00:40:00.000Z).

state files:
  --state-out writes the update's `state`: the race's latest amounts per entrant and
  bucket ("buckets"), its last odds per entrant and type ("odds"), status, start_time,
  pools and result flags, as a JSON object. Pass it to the next poll's --state to replay
  a sequence of polls:
    raceday transform poll1.json --at 2025-07-17T00:30:00Z --state-out s1.json
    raceday transform poll2.json --at 2025-07-17T00:35:00Z --state s1.json --state-out s2.json
  Keys left out of a state file take the values of a race never seen before.

exit status: 0 success, 2 bad input (file, --at, payload or state), 1 other failures.
"""


class _InputError(Exception):
    """Bad input from the user: one line on stderr, exit 2."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `raceday transform`."""
    parser = subparsers.add_parser(
        "transform",
        help="transform a captured TAB event payload and print the race update as JSON",
        description=(
            "Transform one captured TAB event payload (the JSON body of /racing/events/{id}) as if\n"
            "it had been received at --at, and print the update as one JSON object with the keys\n"
            "race, meeting, entrants, money_flow, odds, pools, results and quality, named like the\n"
            "storage columns. Money is integer cents. Runs the Rust extension, as the service does."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("payload", metavar="PAYLOAD.json", type=Path, help="the event payload file")
    parser.add_argument(
        "--at",
        required=True,
        metavar="INSTANT",
        help="when the payload was received (the poll time), e.g. 2025-07-17T00:40:00Z",
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="STATE.json",
        help="prior state of the race (from a previous --state-out)",
    )
    parser.add_argument(
        "--state-out", type=Path, metavar="FILE", help="write the race's state after this poll to FILE"
    )
    parser.add_argument("--compact", action="store_true", help="print the JSON on one line")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Transform the payload and print the update; returns the exit code."""
    try:
        document, state = _transform(args.payload, args.at, args.state)
        state_text = _dumps(state, compact=False)
    except _InputError as exc:
        return _fail(str(exc), INPUT_ERROR)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        # BaseException: a Rust panic surfaces as pyo3's PanicException, which is not an Exception.
        return _fail(f"internal error: {type(exc).__name__}: {one_line(str(exc))}", OUTPUT_ERROR)
    if args.state_out is not None:
        try:
            _write_atomically(args.state_out, state_text)
        except OSError as exc:
            return _fail(f"cannot write state to {args.state_out}: {exc.strerror or exc}", OUTPUT_ERROR)
    try:
        sys.stdout.write(_dumps(document, compact=args.compact))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OUTPUT_ERROR
    return 0


def _transform(payload_path: Path, at: str, state_path: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The update document and the new state document."""
    try:
        polled_at_ms = ms_from_iso(at)
    except ValueError as exc:
        raise _InputError(f"--at: {exc}") from None
    # Imported here so that `raceday --help` and other commands never load the extension.
    import raceday_core

    payload = _read(payload_path, "payload")
    state = _read_state(state_path) if state_path is not None else None
    try:
        if state is None:
            state = empty_state(raceday_core.event_summary(payload)["event_id"])
        update = run_transform(raceday_core, payload, polled_at_ms, state)
    except PayloadError as exc:
        raise _InputError(f"invalid payload {payload_path}: {one_line(str(exc))}") from None
    except ValueError as exc:
        # The engine's contract: a plain ValueError is a bad argument other than the payload.
        raise _InputError(f"cannot transform {payload_path}: {one_line(str(exc))}") from None
    return update_document(update), state_document(update["state"])


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _read_state(path: Path) -> PriorState:
    data = _read(path, "state")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _InputError(f"state {path} is not valid JSON: {one_line(str(exc))}") from None
    try:
        return state_from_document(document)
    except DocumentError as exc:
        raise _InputError(f"state {path}: {exc}") from None


def _dumps(document: dict[str, Any], *, compact: bool) -> str:
    if compact:
        return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
    return json.dumps(document, ensure_ascii=False, allow_nan=False, indent=2) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a failed run never leaves half a state."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code
