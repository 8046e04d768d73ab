"""The committed gRPC stubs are exactly what `make proto` generates from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "services" / "common" / "proto"


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.py*")) if p.is_file()}


def test_generated_stubs_are_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "proto"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_protos.py"), str(out)], check=True, capture_output=True
    )
    fresh, committed = _tree(out), _tree(COMMITTED)
    assert sorted(fresh) == sorted(committed), "stub files differ: run `make proto`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated stubs (run `make proto`): {stale}"


def test_every_service_has_stubs() -> None:
    from services.common.proto.raceday.v1 import (
        fetcher_pb2_grpc,
        query_pb2_grpc,
        transformer_pb2_grpc,
        writer_pb2_grpc,
    )

    assert hasattr(fetcher_pb2_grpc, "FetcherServiceStub")
    assert hasattr(transformer_pb2_grpc, "TransformerServiceStub")
    assert hasattr(writer_pb2_grpc, "WriterServiceStub")
    assert hasattr(query_pb2_grpc, "QueryServiceStub")
