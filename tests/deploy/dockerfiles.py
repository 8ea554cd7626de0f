"""Reading our Dockerfiles (a small parser: enough for our own files; hadolint does the full
parse) and the helpers the image tests share."""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
SERVE = DOCKER / "serve.Dockerfile"
TRAIN = DOCKER / "train.Dockerfile"
DOCKERFILES = [SERVE, TRAIN]


def venv_tool(name: str) -> str:
    """A console script of the venv: `make test` runs its python without activating it."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: it is in requirements.lock"
    return found


@dataclass
class Stage:
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                values[key] = value
        return values


def parse_dockerfile(path: Path) -> list[Stage]:
    """Instructions per build stage: comments and parser directives dropped, continuations
    joined (enough for our own files; hadolint does the full parse)."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            stages.append(Stage(words[2] if len(words) > 2 and words[1].upper() == "AS" else None))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


def runtime(path: Path) -> Stage:
    return parse_dockerfile(path)[-1]


def image_env(path: Path) -> dict[str, str]:
    """The runtime stage's ENV without PATH (its $PATH is resolved by the engine)."""
    return {k: v for k, v in runtime(path).env().items() if k != "PATH"}


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"{args!r} is not the exec (JSON) form"
    return value


def healthcheck_command() -> list[str]:
    (args,) = runtime(SERVE).all("HEALTHCHECK")
    options, _, command = args.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    return exec_form(command)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
