"""Run ``wrk`` (pinned to a CPU) against one URL with a JSON POST body and parse its output."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

INSTALL_HINT = (
    "wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu) or "
    "`brew install wrk`; see https://github.com/wg/wrk"
)

_LUA = """-- POST the same JSON body on every request (written by benchmarks/serving_tabular.py)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("{body}", "rb"))
wrk.body = f:read("*a")
f:close()
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass
class WrkResult:
    concurrency: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    raw: str

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("raw")
        return out


def check_wrk() -> str:
    """Path of wrk, or raise SystemExit saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(INSTALL_HINT)
    return path


def write_lua(workdir: Path, name: str, body: bytes) -> Path:
    """``name.json`` (the body) and ``name.lua`` (a wrk script posting it) in ``workdir``."""
    body_path = workdir / f"{name}.json"
    body_path.write_bytes(body)
    lua = workdir / f"{name}.lua"
    lua.write_text(_LUA.replace("{body}", str(body_path)))
    return lua


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(output: str, concurrency: int) -> WrkResult:
    """Requests/s, latency percentiles, non-2xx and socket errors from ``wrk --latency``."""
    pct = {int(p): _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", output, re.MULTILINE)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if not (rps and done and pct):
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    nan = float("nan")
    return WrkResult(
        concurrency=concurrency,
        duration_s=_ms(done.group(2) + done.group(3)) / 1000,
        requests=int(done.group(1)),
        rps=float(rps.group(1)),
        p50_ms=pct.get(50, nan),
        p75_ms=pct.get(75, nan),
        p90_ms=pct.get(90, nan),
        p99_ms=pct.get(99, nan),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(map(int, sock.groups())) if sock else 0,
        raw=output,
    )


def wrk_command(
    url: str,
    lua: Path,
    concurrency: int,
    duration: float,
    cpu: str | None = "1",
    timeout_s: int = 10,
) -> list[str]:
    cmd = [
        check_wrk(),
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout_s}s",
        "--latency",
        "-s",
        str(lua),
        url,
    ]
    return (["taskset", "-c", cpu, *cmd]) if cpu is not None else cmd


def run(url: str, lua: Path, concurrency: int, duration: float, cpu: str | None = "1") -> WrkResult:
    """One wrk run: one thread, ``concurrency`` connections, ``duration`` seconds."""
    cmd = wrk_command(url, lua, concurrency, duration, cpu)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
    return parse(proc.stdout, concurrency)
