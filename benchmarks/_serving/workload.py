"""What the image and translation serving benchmarks add to ``servers.py`` / ``wrk.py``.

* :func:`write_cycling_lua`: a wrk script that posts a *different* body per request, cycling
  through a list (``wrk.write_lua`` posts one body for ever);
* :func:`measure_point`: one wrk run plus what the server did meanwhile — the cores its
  process group used, the cores everyone else used (``servers.other_cpu``), and rows per
  model call from its ``opsline_batch_rows`` histogram (mean and spread over the buckets);
* :func:`wait_until_quiet`: block until a flag file exists and no pytest process runs (other
  engineers' CPU-heavy checks share the two cores), with a deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from _serving import wrk
from _serving.servers import cpu_snapshot, http, other_cpu

_LUA_CYCLE = """-- POST the next of {n} JSON bodies on each request, cycling (written by {script})
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {{}}
for _, path in ipairs({{{paths}}}) do
  local f = assert(io.open(path, "rb"))
  bodies[#bodies + 1] = f:read("*a")
  f:close()
end
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def write_bodies(workdir: Path, name: str, bodies: list[bytes]) -> str:
    """``name-K.json`` per body; returns their paths as a Lua list's items."""
    paths = []
    for k, body in enumerate(bodies):
        path = workdir / f"{name}-{k}.json"
        path.write_bytes(body)
        paths.append(json.dumps(str(path)))  # a JSON string literal is a Lua string literal
    return ", ".join(paths)


def cycling_lua(n: int, script: str, paths: str) -> str:
    """The Lua of a wrk script posting ``n`` bodies (``paths``, see ``write_bodies``) in turn."""
    return _LUA_CYCLE.format(n=n, script=script, paths=paths)


def write_cycling_lua(workdir: Path, name: str, bodies: list[bytes], script: str) -> Path:
    """``name-K.json`` per body and ``name.lua``, a wrk script posting them in turn.

    wrk runs one Lua state per thread (``-t1`` here), so the bodies go out in order across
    all connections: with c connections and n bodies, concurrent requests carry different
    bodies whenever n >= c.
    """
    if len(bodies) == 1:
        return wrk.write_lua(workdir, name, bodies[0])
    lua = workdir / f"{name}.lua"
    lua.write_text(cycling_lua(len(bodies), script, write_bodies(workdir, name, bodies)))
    return lua


def metric_sums(base: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sum over label sets of each ``name`` in the server's Prometheus ``/metrics``."""
    _, text = http("GET", f"{base}/metrics")
    out = dict.fromkeys(names, 0.0)
    for line in text.decode().splitlines():
        if line.startswith("#"):
            continue
        metric = line.split("{", 1)[0].split(" ", 1)[0]
        if metric in out:
            out[metric] += float(line.rsplit(" ", 1)[-1])
    return out


_ROWS = ("opsline_batch_rows_sum", "opsline_batch_rows_count")


def batch_size_buckets(base: str) -> dict[float, float]:
    """Cumulative ``opsline_batch_rows`` bucket counts by upper bound (``le``)."""
    _, text = http("GET", f"{base}/metrics")
    out: dict[float, float] = {}
    for line in text.decode().splitlines():
        if line.startswith("opsline_batch_rows_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            out[bound] = out.get(bound, 0.0) + float(line.rsplit(" ", 1)[-1])
    return out


def batch_size_spread(before: dict[float, float], after: dict[float, float]) -> str:
    """The model calls of one point by rows per call, from the histogram buckets:
    e.g. ``1: 50%, 5-8: 50%`` (the buckets are 1, 2, 4, 8, ...)."""
    bounds = sorted(after)
    calls = {b: after[b] - before.get(b, 0.0) for b in bounds}
    total = calls[bounds[-1]] if bounds else 0
    if not total:
        return "-"
    parts, previous, low = [], 0.0, 1
    for b in bounds:
        n = calls[b] - previous
        previous = calls[b]
        if n > 0:
            high = "+" if b == float("inf") else f"{b:g}"
            label = high if str(low) == high else f"{low}-{high}"
            parts.append(f"{label}: {n / total:.0%}")
        low = int(b) + 1 if b != float("inf") else low
    return ", ".join(parts)


def group_cpu(before: dict, after: dict, seconds: float, group: int) -> float:
    """Cores used meanwhile by the processes of one process group (the server)."""
    ticks = sum(t - before.get(pid, (0,))[0] for pid, (t, g, _) in after.items() if g == group)
    return ticks / os.sysconf("SC_CLK_TCK") / max(seconds, 1e-9)


def measure_point(
    system: str,
    url: str,
    lua: Path,
    concurrency: int,
    duration: float,
    client_cpu: str,
    server_group: int,
    base: str,
    rows: int = 1,
    **extra,
) -> dict:
    """One closed-loop wrk run; the point in ``report.points_table``'s format plus
    ``server_cpu`` (cores of the server's group) and whatever ``extra`` says."""
    before, buckets = metric_sums(base, _ROWS), batch_size_buckets(base)
    cpu_before, t0 = cpu_snapshot(), time.monotonic()
    result = wrk.run(url, lua, concurrency, duration, cpu=client_cpu)
    cpu_after, seconds = cpu_snapshot(), time.monotonic() - t0
    after = metric_sums(base, _ROWS)
    spread = batch_size_spread(buckets, batch_size_buckets(base))
    calls = after["opsline_batch_rows_count"] - before["opsline_batch_rows_count"]
    return {
        "system": system,
        "route": url.split("/", 3)[-1],
        "rows": rows,
        **result.as_dict(),
        "rows_per_s": result.rps * rows,
        "rows_per_model_call": (
            (after["opsline_batch_rows_sum"] - before["opsline_batch_rows_sum"]) / calls
            if calls
            else None
        ),
        "model_calls": calls,
        "rows_per_call_spread": spread,
        "server_cpu": group_cpu(cpu_before, cpu_after, seconds, server_group),
        "other_cpu": other_cpu(cpu_before, cpu_after, seconds, {server_group}),
        **extra,
    }


def pytest_running() -> list[str]:
    out = subprocess.run(
        ["pgrep", "-fa", "pytest"], capture_output=True, text=True, check=False
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def wait_until_quiet(
    flag: Path | None, timeout_s: float, say: Callable[[str], None], poll_s: float = 30
) -> dict:
    """Wait until ``flag`` exists (if given) and no pytest process runs, at most ``timeout_s``.

    Returns what happened, for the report: ``{"flag", "waited_s", "quiet"}`` (``quiet``
    False = the deadline passed and the numbers that follow are taken under contention).
    """
    started = time.monotonic()
    while True:
        flag_ok = flag is None or flag.exists()
        tests = pytest_running()
        if flag_ok and not tests:
            return {
                "flag": str(flag) if flag else None,
                "waited_s": time.monotonic() - started,
                "quiet": True,
            }
        if time.monotonic() - started >= timeout_s:
            say(
                f"Still busy after {timeout_s / 60:.0f} min "
                f"(flag {'present' if flag_ok else 'absent'}, "
                f"{len(tests)} pytest processes): measuring anyway, numbers flagged contended."
            )
            return {
                "flag": str(flag) if flag else None,
                "waited_s": time.monotonic() - started,
                "quiet": False,
                "pytest": len(tests),
                "flag_present": flag_ok,
            }
        say(
            f"  waiting for quiet: flag {flag} {'present' if flag_ok else 'absent'}, "
            f"{len(tests)} pytest processes ({(time.monotonic() - started) / 60:.1f} min)"
        )
        time.sleep(poll_s)


def quiet_note(wait: dict | None) -> str:
    """One sentence for the report on how the run waited for the machine to be quiet."""
    if not wait:
        return "The run did not wait for other jobs (no `--wait-for`)."
    if wait["quiet"]:
        return (
            f"The run waited {wait['waited_s'] / 60:.1f} min for "
            + (f"`{wait['flag']}` and " if wait["flag"] else "")
            + "no pytest process before measuring."
        )
    return (
        f"**CONTENDED**: after {wait['waited_s'] / 60:.0f} min the machine was still busy "
        f"(flag present: {wait.get('flag_present')}, {wait.get('pytest', 0)} pytest "
        "processes); measured anyway."
    )
