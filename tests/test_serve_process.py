"""`raceday serve` as a real process: health, /metrics, SIGTERM, and configuration errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc

from services.common.health import SERVING, check_health_sync
from tests.conftest import free_port

RACEDAY = str(Path(sys.executable).with_name("raceday"))


def _wait_serving(port: int, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        while time.monotonic() < deadline:
            try:
                status = check_health_sync(channel, timeout=1)
                if status == SERVING:
                    return status
            except grpc.RpcError as exc:
                last_error = exc
            time.sleep(0.1)
    raise AssertionError(f"service on port {port} never reported SERVING: {last_error}")


def test_transformer_serves_health_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "RACEDAY_TRANSFORMER_PORT": str(grpc_port),
        "RACEDAY_TRANSFORMER_METRICS_PORT": str(metrics_port),
        "RACEDAY_DATA_DIR": str(tmp_path),
    }
    process = subprocess.Popen(
        [RACEDAY, "serve", "transformer"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert _wait_serving(grpc_port) == SERVING
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert response.status == 200
        assert "process_cpu_seconds_total" in body or "python_info" in body
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=5)
        assert code == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_port_flag_overrides_the_variable(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "RACEDAY_TRANSFORMER_PORT": "1",
        "RACEDAY_TRANSFORMER_METRICS_PORT": str(free_port()),
        "RACEDAY_DATA_DIR": str(tmp_path),
    }
    process = subprocess.Popen([RACEDAY, "serve", "transformer", "--port", str(port)], env=env)
    try:
        _wait_serving(port)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bad_configuration_exits_2_with_one_line_naming_the_variable() -> None:
    env = {**os.environ, "RACEDAY_TRANSFORMER_PORT": "abc"}
    result = subprocess.run(
        [RACEDAY, "serve", "transformer"], check=False, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "RACEDAY_TRANSFORMER_PORT" in lines[0]
    assert "Traceback" not in result.stderr
