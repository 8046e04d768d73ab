"""The gateway's settings, read from the environment and validated at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from services.common.clock import Clock
from services.common.config import ConfigError, Env
from services.common.settings import DEFAULT_HTTP_PORT, ClientSettings, bind_host, shutdown_grace_s

# The body limit of rest-api.md §1.5 (413 above it).
MAX_BODY_BYTES: Final = 100 * 1024


def _origin(value: str) -> str:
    """A CORS origin: scheme://host[:port] without a path, or `*`."""
    if value == "*":
        return value
    origin = value.rstrip("/")
    if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
        raise ValueError(f"CORS origins must look like https://host[:port], got {value!r}")
    return origin


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Where the HTTP server listens, which services it calls, and the REST transport options."""

    bind_host: str
    http_port: int
    clients: ClientSettings
    deadline_s: float
    health_deadline_s: float
    health_cache_s: float
    cors_origins: tuple[str, ...]
    compat_aliases: bool
    hsts: bool
    grace_seconds: float
    # The shared (possibly accelerated) clock of `raceday up --sim-speed`; real time by default.
    clock: Clock
    # GET /api/stream: idle heartbeat, and the events a client may lag behind before it is dropped.
    stream_heartbeat_s: float
    stream_client_queue: int

    @classmethod
    def from_env(cls, env: Env | None = None) -> GatewaySettings:
        """Read and validate every gateway variable (ConfigError names the bad one)."""
        env = env or Env()
        origins = env.csv("API_CORS_ORIGINS", ())
        try:
            cors = tuple(_origin(item) for item in origins)
        except ValueError as exc:
            raise ConfigError("API_CORS_ORIGINS", str(exc)) from None
        return cls(
            bind_host=bind_host(env),
            http_port=env.port("RACEDAY_GATEWAY_HTTP_PORT", DEFAULT_HTTP_PORT),
            clients=ClientSettings.from_env(env),
            deadline_s=env.number("RACEDAY_GATEWAY_DEADLINE_S", 2.0, minimum=0.05, maximum=60.0),
            health_deadline_s=env.number("RACEDAY_GATEWAY_HEALTH_DEADLINE_S", 0.5, minimum=0.05, maximum=5.0),
            health_cache_s=env.number("RACEDAY_GATEWAY_HEALTH_CACHE_S", 2.0, minimum=0.0, maximum=60.0),
            cors_origins=cors,
            compat_aliases=env.flag("API_COMPAT_ALIASES", True),
            hsts=env.flag("API_HSTS", False),
            grace_seconds=shutdown_grace_s(env),
            clock=Clock.from_env(env),
            stream_heartbeat_s=env.number("RACEDAY_STREAM_HEARTBEAT_S", 15.0, minimum=0.05, maximum=300.0),
            stream_client_queue=env.integer("RACEDAY_STREAM_CLIENT_QUEUE", 256, minimum=1, maximum=100_000),
        )
