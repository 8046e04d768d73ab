"""Settings shared by every service: ports, addresses, data directory, log level.

Each service's gRPC port is RACEDAY_<SERVICE>_PORT and its metrics port
RACEDAY_<SERVICE>_METRICS_PORT; clients find services at RACEDAY_<SERVICE>_ADDR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from services.common.config import Env

ServiceName = Literal["fetcher", "transformer", "writer", "gateway"]
SERVICE_NAMES: Final[tuple[ServiceName, ...]] = ("fetcher", "transformer", "writer", "gateway")

DEFAULT_GRPC_PORTS: Final[dict[ServiceName, int]] = {
    "fetcher": 50051,
    "transformer": 50052,
    "writer": 50053,
    "gateway": 50054,
}
DEFAULT_METRICS_PORTS: Final[dict[ServiceName, int]] = {
    "fetcher": 9101,
    "transformer": 9102,
    "writer": 9103,
    "gateway": 9104,
}
DEFAULT_HTTP_PORT: Final = 8080
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Where one service listens."""

    service: ServiceName
    bind_host: str
    grpc_port: int
    metrics_port: int
    log_level: str
    grace_seconds: float

    @classmethod
    def from_env(
        cls, service: ServiceName, env: Env | None = None, port: int | None = None
    ) -> ServerSettings:
        """Read the service's listening settings; `port` (from --port) overrides the variable."""
        env = env or Env()
        upper = service.upper()
        grpc_port = env.port(f"RACEDAY_{upper}_PORT", DEFAULT_GRPC_PORTS[service])
        return cls(
            service=service,
            bind_host=bind_host(env),
            grpc_port=grpc_port if port is None else port,
            metrics_port=env.port(f"RACEDAY_{upper}_METRICS_PORT", DEFAULT_METRICS_PORTS[service]),
            log_level=env.choice("RACEDAY_LOG_LEVEL", "INFO", LOG_LEVELS),
            grace_seconds=shutdown_grace_s(env),
        )


def bind_host(env: Env) -> str:
    """RACEDAY_BIND_HOST: the interface every server listens on (gRPC and the gateway's HTTP)."""
    return env.text("RACEDAY_BIND_HOST", "127.0.0.1")


def shutdown_grace_s(env: Env) -> float:
    """RACEDAY_SHUTDOWN_GRACE_S: how long a stopping server lets in-flight calls finish."""
    return env.number("RACEDAY_SHUTDOWN_GRACE_S", 5.0, minimum=0.0, maximum=60.0)


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How to reach the other services."""

    fetcher_addr: str
    transformer_addr: str
    writer_addr: str
    lb_policy: str

    @classmethod
    def from_env(cls, env: Env | None = None) -> ClientSettings:
        """Read the gRPC targets of the services (host:port or dns:///host:port)."""
        env = env or Env()
        return cls(
            fetcher_addr=env.text("RACEDAY_FETCHER_ADDR", f"127.0.0.1:{DEFAULT_GRPC_PORTS['fetcher']}"),
            transformer_addr=env.text(
                "RACEDAY_TRANSFORMER_ADDR", f"127.0.0.1:{DEFAULT_GRPC_PORTS['transformer']}"
            ),
            writer_addr=env.text("RACEDAY_WRITER_ADDR", f"127.0.0.1:{DEFAULT_GRPC_PORTS['writer']}"),
            lb_policy=env.choice("RACEDAY_GRPC_LB_POLICY", "pick_first", ("pick_first", "round_robin")),
        )


def data_dir(env: Env | None = None) -> Path:
    """The project's data directory (embedded PostgreSQL lives here), RACEDAY_DATA_DIR."""
    env = env or Env()
    return Path(env.text("RACEDAY_DATA_DIR", ".raceday-data")).expanduser().resolve()
