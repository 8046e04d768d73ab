"""`raceday serve gateway` as a real process: gRPC health, the HTTP server in the same process,
graceful SIGTERM, and configuration errors naming the variable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc

from services.common.health import SERVING, check_health_sync
from services.common.net import free_port

COMMAND = [sys.executable, "-m", "services.cli", "serve", "gateway"]


def wait_serving(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        while time.monotonic() < deadline:
            try:
                if check_health_sync(channel, timeout=1) == SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise AssertionError("the gateway never reported SERVING")


def test_serve_gateway_runs_http_in_process_and_stops_on_sigterm() -> None:
    grpc_port, http_port, dead = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "RACEDAY_GATEWAY_PORT": str(grpc_port),
        "RACEDAY_GATEWAY_METRICS_PORT": str(free_port()),
        "RACEDAY_GATEWAY_HTTP_PORT": str(http_port),
        "RACEDAY_WRITER_ADDR": f"127.0.0.1:{dead}",
        "RACEDAY_TRANSFORMER_ADDR": f"127.0.0.1:{dead}",
        "RACEDAY_FETCHER_ADDR": f"127.0.0.1:{dead}",
    }
    process = subprocess.Popen(COMMAND, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_serving(grpc_port)
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/openapi.json", timeout=5) as response:
            assert response.status == 200
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=5)
            raise AssertionError("health must be 503 without a writer")
        except urllib.error.HTTPError as error:
            assert error.code == 503
            assert b"writer" in error.read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        _, stderr = process.communicate(timeout=5)
        assert b"Traceback" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bad_configuration_exits_2_naming_the_variable() -> None:
    env = {**os.environ, "API_CORS_ORIGINS": "not-an-origin", "RACEDAY_GATEWAY_HTTP_PORT": str(free_port())}
    result = subprocess.run(COMMAND, env=env, capture_output=True, timeout=60, check=False)
    assert result.returncode == 2
    assert b"API_CORS_ORIGINS" in result.stderr
