"""``up`` / ``down`` / ``status`` over the three servers, in dependency order.

MLflow needs PostgreSQL (its backend store) and S3 (its artifacts), so ``up`` starts them in
that order and ``down`` stops them in reverse. ``up`` is idempotent: a server already running
is left alone. If a server fails to start, the ones this ``up`` started are stopped again,
so a failure never leaves half a stack behind.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass

from opsline.errors import OpslineError
from opsline.stack import mlflow_server, postgres, processes, s3
from opsline.stack.settings import StackSettings

Say = Callable[[str], None]


@dataclass(frozen=True)
class Component:
    """How to run one server: its ports, start, health check, setup and stop signal."""

    service: Callable[[StackSettings], processes.Service]
    ports: Callable[[StackSettings], dict[str, int]]
    uri: Callable[[StackSettings], str]
    start: Callable[[StackSettings], int]
    healthy: Callable[[StackSettings], bool]
    setup: Callable[[StackSettings], None]
    timeout: float
    # PostgreSQL: SIGINT is its "fast" shutdown (SIGTERM would wait for clients to leave).
    stop_signal: int = signal.SIGTERM
    grace: float = 15.0


def _ports(settings: StackSettings, *prefixes: str) -> dict[str, int]:
    return {k: v for k, v in settings.ports().items() if k.startswith(prefixes)}


COMPONENTS = (
    Component(
        postgres.service,
        lambda s: _ports(s, "PostgreSQL"),
        lambda s: f"postgresql://{s.client_host}:{s.pg_port}",
        lambda s: (postgres.init_cluster(s), postgres.start(s))[1],
        postgres.healthy,
        postgres.provision,
        timeout=60,
        stop_signal=signal.SIGINT,
    ),
    # SeaweedFS takes ~15 s to stop gracefully. Killing it after 5 s loses nothing it has
    # acknowledged (volumes and the filer's store are already written to the OS; only a
    # machine crash could lose unsynced pages), so `stack down` does not wait that long.
    Component(
        s3.service,
        lambda s: _ports(s, "S3 API", "SeaweedFS"),
        lambda s: s.s3_endpoint,
        s3.start,
        s3.healthy,
        s3.ensure_bucket,
        timeout=60,
        grace=5.0,
    ),
    # The first start migrates the MLflow schema in PostgreSQL: slow on a busy machine.
    Component(
        mlflow_server.service,
        lambda s: _ports(s, "MLflow"),
        lambda s: s.tracking_uri,
        mlflow_server.start,
        mlflow_server.healthy,
        lambda s: None,
        timeout=180,
    ),
)


@dataclass(frozen=True)
class Row:
    name: str
    uri: str
    pid: int | None
    healthy: bool
    log: str

    @property
    def state(self) -> str:
        if self.pid is None:
            return "stopped"
        return "healthy" if self.healthy else "running, not answering"


def status(settings: StackSettings) -> list[Row]:
    rows = []
    for component in COMPONENTS:
        svc = component.service(settings)
        pid = processes.pid_of(svc)
        rows.append(
            Row(
                svc.name,
                component.uri(settings),
                pid,
                pid is not None and component.healthy(settings),
                str(svc.log),
            )
        )
    return rows


def up(settings: StackSettings, say: Say) -> bool:
    """Start what is not running; returns whether anything was started."""
    if all(row.healthy for row in status(settings)):
        return False
    settings.dir.mkdir(parents=True, exist_ok=True)
    started: list[Component] = []
    try:
        for component in COMPONENTS:
            svc = component.service(settings)
            pid = processes.pid_of(svc)
            if pid is None:
                _check_ports(settings, component)
                say(f"Starting {svc.name} (log: {svc.log}) ...")
                pid = component.start(settings)
                started.append(component)
            # Also for one already running: it may still be starting (another `up`).
            processes.wait_healthy(
                svc, pid, lambda c=component: c.healthy(settings), component.timeout
            )
            component.setup(settings)
    except BaseException:
        for component in reversed(started):
            processes.stop(component.service(settings), component.stop_signal, component.grace)
        raise
    return bool(started)


def _check_ports(settings: StackSettings, component: Component) -> None:
    for name, port in component.ports(settings).items():
        if processes.port_in_use(settings.host, port):
            label, _, key = name.partition(" (")
            raise OpslineError(
                f"Port {port} on {settings.host}, needed by {label}, is already "
                f"in use; free it or set {key.rstrip(')')} in "
                f"{settings.source}."
            )


def down(settings: StackSettings) -> list[str]:
    """Stop every server the stack started (reverse order); returns the names stopped."""
    stopped = []
    for component in reversed(COMPONENTS):
        svc = component.service(settings)
        if processes.stop(svc, component.stop_signal, component.grace):
            stopped.append(svc.name)
    return stopped


def env_lines(settings: StackSettings) -> list[str]:
    return [f"export {key}={value}" for key, value in settings.client_env().items()]
