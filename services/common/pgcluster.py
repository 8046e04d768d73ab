"""A PostgreSQL cluster of one's own, that can be stopped and started on demand.

Outage tests and `raceday soak` take the database away from a running system; they need a
server nobody else uses. This one is built from the embedded PostgreSQL's binaries (the
`pgserver` package), listens on a loopback TCP port, trusts local connections and keeps its
data until `remove()`. PostgreSQL refuses to run as root: as root the server runs as the
`pgserver` system user, as the embedded server does.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.common.database import import_pgserver

SYSTEM_USER = "pgserver"


def _binaries() -> Path:
    return Path(import_pgserver()._commands.POSTGRES_BIN_PATH)


@dataclass
class LocalPostgres:
    """A cluster in `data_dir` listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        """The URL of the `postgres` database as the `postgres` role."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout_s: float = 60.0) -> None:
        user = SYSTEM_USER if os.geteuid() == 0 else None
        subprocess.run(
            [str(_binaries() / program), *args],
            check=True,
            capture_output=True,
            timeout=timeout_s,
            user=user,
        )

    def init(self) -> LocalPostgres:
        """Create the cluster (once) and start it."""
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                _ensure_system_user()
                _let_system_user_run_binaries()
                # The server's user owns its data; the directories above must let it through.
                entry = pwd.getpwnam(SYSTEM_USER)
                os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        return self

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}"
        log = self.data_dir / "server.log"
        self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-o", options, "-l", str(log), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: roll back open transactions; `immediate`: as if it crashed)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-m", mode, "stop")

    def remove(self) -> None:
        """Stop the server if it runs and delete its data."""
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):  # already down
                self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _let_system_user_run_binaries() -> None:
    """Make the binaries (inside the venv, perhaps under a private directory) usable by the server's
    user, as pgserver does before its own initdb: its permission helpers, called the same way."""
    utils = importlib.import_module("pgserver.utils")
    binaries = _binaries()
    read = stat.S_IRGRP | stat.S_IROTH
    utils.ensure_prefix_permissions(binaries)
    utils.ensure_folder_permissions(binaries, read | stat.S_IXGRP | stat.S_IXOTH)
    utils.ensure_folder_permissions(binaries.parent / "lib", read)


def _ensure_system_user() -> None:
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True, capture_output=True
        )
