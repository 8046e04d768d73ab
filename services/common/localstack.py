"""The pieces of a Raceday stack on one machine with a PostgreSQL of its own.

`raceday soak` and the outage tests start the services as separate processes against their own
cluster (which they stop and start), on fresh loopback ports; this module is how both build the
cluster, the ports and each service's environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from services.common.clock import Clock
from services.common.database import with_database_name
from services.common.net import free_port
from services.common.pgcluster import LocalPostgres
from services.common.settings import SERVICE_NAMES, ServiceName

DATABASE_NAME = "raceday"


def own_postgres(directory: Path) -> tuple[LocalPostgres, str]:
    """A started cluster under `directory` (created) with an empty database; (cluster, its URL).

    The directory is made traversable: run as root, the server runs as its own user.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)  # noqa: S103 - the server's own user must reach its data directory
    cluster = LocalPostgres(directory / "data", free_port()).init()
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
    return cluster, with_database_name(cluster.url, DATABASE_NAME)


@dataclass(frozen=True, slots=True)
class StackPorts:
    """Fresh loopback ports: gRPC and /metrics of each service, and the gateway's HTTP."""

    grpc: dict[ServiceName, int] = field(default_factory=lambda: {s: free_port() for s in SERVICE_NAMES})
    metrics: dict[ServiceName, int] = field(default_factory=lambda: {s: free_port() for s in SERVICE_NAMES})
    http: int = field(default_factory=free_port)

    def address(self, service: ServiceName) -> str:
        """host:port of the service's gRPC server."""
        return f"127.0.0.1:{self.grpc[service]}"


def stack_env(
    ports: StackPorts,
    *,
    database_url: str,
    tab_url: str,
    spool_dir: Path,
    clock: Clock,
    who: str,
) -> dict[str, str]:
    """The environment every service of the stack shares (without os.environ)."""
    return {
        "RACEDAY_DATABASE_URL": database_url,
        "RACEDAY_WRITER_ADDR": ports.address("writer"),
        "RACEDAY_TRANSFORMER_ADDR": ports.address("transformer"),
        "RACEDAY_FETCHER_ADDR": ports.address("fetcher"),
        "RACEDAY_GATEWAY_HTTP_PORT": str(ports.http),
        "NZTAB_BASE_URL": tab_url,
        "NZTAB_FROM": f"{who}@example.co.nz",
        "NZTAB_PARTNER": f"Raceday {who}",
        "NZTAB_PARTNER_ID": who,
        "RACEDAY_SPOOL_DIR": str(spool_dir),
        **clock.env(),
    }


def service_env(env: dict[str, str], ports: StackPorts, service: ServiceName) -> dict[str, str]:
    """`env` plus the service's own gRPC and /metrics ports."""
    return {
        **env,
        f"RACEDAY_{service.upper()}_PORT": str(ports.grpc[service]),
        f"RACEDAY_{service.upper()}_METRICS_PORT": str(ports.metrics[service]),
    }
