"""A wrk script that sends at a fixed rate (what wrk2's ``-R`` does), for the soak.

wrk alone is a closed loop: each connection sends as soon as its previous answer is in, so
it measures the peak, not a steady load. This script gives wrk's ``delay()`` hook one
schedule shared by every connection of its thread: request k is due at ``t0 + k / rate``;
a connection that is free waits for the next due slot, a slot already past is sent at once
(catching up, as an open-loop client would). Time comes from ``clock_gettime`` through
LuaJIT's FFI (wrk's Lua has no sub-second clock).

What this cannot do is start a request while every connection is busy: if the server
stalls for longer than ``connections / rate`` seconds, slots fall behind and wrk's latency
(send → last byte) leaves out the wait (coordinated omission). The script therefore counts
the sends that went out more than ``LATE_MS`` behind their slot and the largest lag, and
prints them in ``done()``; the soak reports them per minute, so a minute whose latencies
are not to be trusted says so.
"""

from __future__ import annotations

import re
from pathlib import Path

from _serving.workload import cycling_lua, write_bodies

LATE_MS = 5.0

# Pacing on top of the cycling script (workload.cycling_lua): a clock, then delay().
_PACING = """-- {rate:g} POSTs/s on one shared schedule
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} opsline_timespec;
int clock_gettime(int clk_id, opsline_timespec *tp);
]]
local ts = ffi.new("opsline_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local interval = 1000 / {rate}
local next_at = nil
-- globals, so done() can read them through thread:get()
scheduled, late, max_lag = 0, 0, 0
delay = function()
  local t = now_ms()
  if next_at == nil then next_at = t end
  local slot = next_at
  next_at = next_at + interval
  scheduled = scheduled + 1
  if slot <= t then
    local lag = t - slot
    if lag > {late_ms} then late = late + 1 end
    if lag > max_lag then max_lag = lag end
    return 0
  end
  return slot - t
end

local threads = {{}}
setup = function(thread) threads[#threads + 1] = thread end
done = function(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("PACED scheduled=%d late=%d max_lag_ms=%.1f\\n",
      thread:get("scheduled"), thread:get("late"), thread:get("max_lag")))
  end
end
"""


def write_paced_lua(workdir: Path, name: str, bodies: list[bytes], rate: float) -> Path:
    """``name-K.json`` per body and ``name.lua`` sending them in turn at ``rate`` req/s
    (one wrk thread: ``-t1``, as ``wrk.wrk_command`` runs it)."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    lua = workdir / f"{name}.lua"
    cycle = cycling_lua(len(bodies), "benchmarks/soak.py", write_bodies(workdir, name, bodies))
    lua.write_text(cycle + _PACING.format(rate=rate, late_ms=LATE_MS))
    return lua


def schedule_stats(output: str) -> dict[str, float]:
    """``scheduled``, ``late`` (sends more than ``LATE_MS`` behind) and ``max_lag_ms``."""
    m = re.search(r"PACED scheduled=(\d+) late=(\d+) max_lag_ms=([\d.]+)", output)
    if not m:
        raise RuntimeError(f"the paced wrk script printed no schedule line:\n{output}")
    return {"scheduled": int(m.group(1)), "late": int(m.group(2)), "max_lag_ms": float(m.group(3))}
