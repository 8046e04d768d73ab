"""The image test (`make image-test`): every service of the built image, run as a container.

Each service runs from the image's root filesystem, mounted read-only, as user 10001, with only a
tmpfs at /tmp (as the Kubernetes pods run it), sharing the host's network: the writer against a
scratch database on the test PostgreSQL, the fetcher polling a simulated TAB served by this
process. The test checks each one's gRPC health and /metrics, that the root filesystem cannot be
written, that the image holds no compiler, no embedded PostgreSQL and no dev dependency, that the
writer without a database URL says how to fix it, and reports the image size.

Containers are run with buildah's storage and `unshare` + `chroot` rather than podman: podman's
runtime (crun) cannot set the rlimits it wants inside this machine's sandbox. The mechanism is the
same as buildah's chroot isolation, which builds the image.

    python tools/image/image_test.py [--image localhost/raceday:0.1.0] [--database-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.common.database import scratch_database  # noqa: E402
from services.common.health import NotServingError, wait_serving  # noqa: E402
from services.common.net import free_port  # noqa: E402
from services.common.settings import ServiceName  # noqa: E402
from services.tabsim.config import TabSimConfig  # noqa: E402
from services.tabsim.server import run_tabsim  # noqa: E402

USER = "10001:10001"
# The container's own tmpfs (the only writable path), not the host's /tmp.
CONTAINER_TMP = "/tmp"  # noqa: S108
SIZE_TARGET_MB = 250
START_TIMEOUT_S = 90.0
# Runs inside a new mount and PID namespace: the image's root read-only, /tmp a tmpfs, then the
# command as user 10001 with only the given environment.
RUNNER = r"""
set -eu
root=$(mktemp -d)
mount --bind "$ROOTFS" "$root"
mount -o remount,bind,ro "$root"
mount -t tmpfs -o size=256m,mode=1777 tmpfs "$root/tmp"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
exec chroot --userspec="$RUN_AS" "$root" /usr/bin/env -i "$@"
"""


def buildah(*args: str) -> str:
    """Run buildah; its stdout."""
    return subprocess.run(["buildah", *args], check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class Container:
    """A working container of the image with its root filesystem mounted on the host."""

    name: str
    rootfs: str
    env: list[str]

    def command(self, argv: list[str], env: dict[str, str]) -> list[str]:
        """The host command that runs `argv` in this container (read-only root, user 10001)."""
        environment = [*self.env, *(f"{k}={v}" for k, v in env.items())]
        return [
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "sh",
            "-c",
            RUNNER,
            "runner",
            *environment,
            *argv,
        ]

    def run(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command to completion in the container."""
        return subprocess.run(
            self.command(argv, env or {}),
            env={**os.environ, "ROOTFS": self.rootfs, "RUN_AS": USER},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start a long-running command in the container, output to `log`."""
        handle = log.open("wb")
        return subprocess.Popen(
            self.command(argv, env),
            env={**os.environ, "ROOTFS": self.rootfs, "RUN_AS": USER},
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


@contextlib.contextmanager
def container(image: str) -> Iterator[Container]:
    """A container of `image`, removed afterwards."""
    name = buildah("from", "--pull-never", image)
    try:
        config = json.loads(buildah("inspect", "--type", "container", name))
        env = list(config["OCIv1"]["config"].get("Env", []))
        yield Container(name, buildah("mount", name), env)
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True, check=False)


def image_size_mb(image: str) -> float:
    """The image's size as buildah reports it (uncompressed layers), in MB."""
    size = str(json.loads(buildah("images", "--json", image))[0]["size"])  # e.g. "235 MB"
    number, unit = size.split()
    return float(number) * {"B": 1e-6, "kB": 1e-3, "KB": 1e-3, "MB": 1.0, "GB": 1e3}[unit]


class Failures(list[str]):
    """What failed; printed at the end."""

    def check(self, ok: bool, what: str, detail: str = "") -> None:
        """Record and print one check."""
        print(
            f"  {'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""), flush=True
        )
        if not ok:
            self.append(what)


def static_checks(box: Container, failures: Failures) -> None:
    """What the image is and is not, checked inside it."""
    print("image contents (as user 10001, read-only root):", flush=True)
    who = box.run(["id", "-u"])
    failures.check(who.stdout.strip() == "10001", "runs as uid 10001", who.stdout + who.stderr)
    write = box.run(["sh", "-c", "touch /home/raceday/x || touch /x"])
    failures.check(write.returncode != 0, "the root filesystem is read-only", write.stdout + write.stderr)
    tmp = box.run(["sh", "-c", f"echo ok > {CONTAINER_TMP}/x && cat {CONTAINER_TMP}/x"])
    failures.check(tmp.stdout.strip() == "ok", f"{CONTAINER_TMP} (a tmpfs) is writable", tmp.stderr)
    tools = box.run(
        ["sh", "-c", "for t in gcc cc g++ clang cargo rustc maturin make; do command -v $t; done"]
    )
    failures.check(tools.stdout.strip() == "", "no compiler or build tool", tools.stdout)
    probe = (
        "import importlib.util as u; "
        "print([m for m in ('pgserver', 'pytest', 'mypy', 'ruff', 'maturin', 'hypothesis', 'playwright') "
        "if u.find_spec(m)])"
    )
    modules = box.run(["python", "-c", probe])
    failures.check(
        modules.stdout.strip() == "[]",
        "no embedded PostgreSQL, no dev dependencies",
        modules.stdout + modules.stderr,
    )
    version = box.run(["raceday", "--version"])
    failures.check(version.returncode == 0, "raceday --version", version.stdout + version.stderr)
    writer = box.run(["raceday", "serve", "writer"], {"RACEDAY_DATA_DIR": f"{CONTAINER_TMP}/raceday-data"})
    failures.check(
        writer.returncode == 2 and "raceday[embedded]" in writer.stderr,
        "writer without RACEDAY_DATABASE_URL exits 2 saying what to do",
        writer.stderr[-300:],
    )


@contextlib.asynccontextmanager
async def services(
    box: Container, database_url: str, tab_url: str, logs: Path
) -> AsyncIterator[dict[ServiceName, tuple[int, int]]]:
    """The four services running in containers; service -> (gRPC port, metrics port)."""
    ports: dict[ServiceName, tuple[int, int]] = {
        s: (free_port(), free_port()) for s in ("writer", "transformer", "fetcher", "gateway")
    }
    common = {
        "RACEDAY_BIND_HOST": "127.0.0.1",
        "RACEDAY_DATA_DIR": f"{CONTAINER_TMP}/raceday-data",
        "RACEDAY_SPOOL_DIR": f"{CONTAINER_TMP}/spool",
        "RACEDAY_DATABASE_URL": database_url,
        "RACEDAY_GATEWAY_HTTP_PORT": str(free_port()),
        "NZTAB_BASE_URL": tab_url,
        "NZTAB_FROM": "image-test@example.co.nz",
        "NZTAB_PARTNER": "Raceday image test",
        "NZTAB_PARTNER_ID": "image-test",
        **{f"RACEDAY_{s.upper()}_ADDR": f"127.0.0.1:{grpc}" for s, (grpc, _) in ports.items()},
        **{f"RACEDAY_{s.upper()}_PORT": str(grpc) for s, (grpc, _) in ports.items()},
        **{f"RACEDAY_{s.upper()}_METRICS_PORT": str(metrics) for s, (_, metrics) in ports.items()},
    }
    started: list[subprocess.Popen[bytes]] = []
    try:
        for service in ports:
            started.append(box.start(["raceday", "serve", service], common, logs / f"{service}.log"))
        yield ports
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


async def service_checks(box: Container, database_url: str, logs: Path, failures: Failures) -> None:
    """Each service's gRPC health and /metrics."""
    async with (
        run_tabsim(TabSimConfig(port=0)) as tabsim,
        services(box, database_url, tabsim.url, logs) as ports,
        httpx.AsyncClient(timeout=5) as http,
    ):
        for service, (grpc_port, metrics_port) in ports.items():
            started = time.monotonic()
            try:
                await wait_serving(f"127.0.0.1:{grpc_port}", timeout_s=START_TIMEOUT_S)
                serving = f"SERVING after {time.monotonic() - started:.1f} s"
            except NotServingError as exc:
                serving = str(exc)
            failures.check(
                serving.startswith("SERVING"),
                f"{service}: gRPC health {serving}",
                (logs / f"{service}.log").read_text()[-600:],
            )
            try:
                metrics = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            except httpx.HTTPError as exc:
                metrics = str(exc)
            families = sum(1 for line in metrics.splitlines() if line.startswith("# TYPE raceday_"))
            failures.check(
                families > 0,
                f"{service}: /metrics answers ({families} raceday metric families)",
                metrics[:300],
            )


def main() -> int:
    """Run every check; 0 when all pass."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="localhost/raceday:0.1.0")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("RACEDAY_TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="server for a scratch database (default: RACEDAY_TEST_DATABASE_URL, else 127.0.0.1:5432)",
    )
    parser.add_argument("--logs", type=Path, default=ROOT / "tests" / "artifacts" / "image-test")
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    failures = Failures()
    size = image_size_mb(args.image)
    print(f"image {args.image}: {size:.0f} MB (target <= {SIZE_TARGET_MB} MB)", flush=True)
    failures.check(size <= SIZE_TARGET_MB, f"size {size:.0f} MB <= {SIZE_TARGET_MB} MB")
    with container(args.image) as box, scratch_database(args.database_url, "raceday_image_test") as url:
        static_checks(box, failures)
        print("services (each in its own container, read-only root, user 10001):", flush=True)
        import uvloop

        uvloop.run(service_checks(box, url, args.logs, failures))
    print(f"image test: {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)} (logs in {args.logs})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
