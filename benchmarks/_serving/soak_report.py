"""The markdown report of ``benchmarks/soak.py``: peak ramp, minute by minute, memory, targets."""

from __future__ import annotations

from typing import Any

from _serving import report

TARGET_RSS_GROWTH = 0.05  # the issue: RSS grows less than 5 % first minute -> last minute
RATE_TOLERANCE = 0.02  # a minute "held the rate" when it answered within 2 % of the target


def measured(minutes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in minutes if not m.get("warmup")]


def rss_growth(minutes: list[dict[str, Any]]) -> float | None:
    """Mean RSS of the last measured minute over that of the first (warm-up left out)."""
    kept = measured(minutes)
    first, last = kept[0]["rss_mean_mb"], kept[-1]["rss_mean_mb"]
    return None if not first or last is None else last / first - 1


def _minute_rows(result: dict[str, Any]) -> list[str]:
    rows = [
        (
            "| minute | req/s | p50 ms | p99 ms | non-2xx | socket errors | late sends (max lag ms)"
            " | RSS MB (mean / max) | other processes, cores | load 1 min |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in result["minutes"]:
        rows.append(
            f"| {'warm-up' if m.get('warmup') else m['minute']} | {m['rps']:,.0f} | "
            f"{m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
            f"{m['non_2xx']} | {m['socket_errors']} | {m['late']} ({m['max_lag_ms']:.0f}) | "
            f"{report._f(m['rss_mean_mb'])} / {report._f(m['rss_max_mb'])} | "
            f"{m['other_cpu']:.2f} | {m['loadavg'][0]:.2f} |"
        )
    return rows


def _targets(result: dict[str, Any]) -> list[str]:
    minutes = result["minutes"]
    errors = sum(m["non_2xx"] + m["socket_errors"] for m in minutes)
    growth = rss_growth(minutes)
    target = result["target_rps"]
    held = [m for m in measured(minutes) if m["rps"] >= target * (1 - RATE_TOLERANCE)]
    p99s = [m["p99_ms"] for m in measured(minutes)]
    checks = [
        ("errors (non-2xx + socket), warm-up included", f"{errors}", errors == 0),
        (
            f"RSS growth, first -> last measured minute (< {TARGET_RSS_GROWTH:.0%})",
            f"{growth:+.2%}" if growth is not None else "-",
            growth is not None and growth < TARGET_RSS_GROWTH,
        ),
        (
            "prediction log holds every answered request",
            f"{result['logged_rows']:,} rows for {result['answered_2xx']:,} answered",
            result["logged_rows"] >= result["answered_2xx"],
        ),
        (
            f"minutes that answered the target rate ({target:,.0f} req/s, within 2 %)",
            f"{len(held)} of {len(measured(minutes))}",
            len(held) == len(measured(minutes)),
        ),
        ("server ready after the soak", "yes" if result["ready_after"] else "no", None),
    ]
    lines = ["| check | measured | |", "|---|---|---|"]
    for name, value, ok in checks:
        verdict = "" if ok is None else ("pass" if ok else "MISS")
        if ok is None:
            verdict = "pass" if result["ready_after"] else "MISS"
        lines.append(f"| {name} | {value} | {verdict} |")
    lines += [
        "",
        (
            f"p99 over the minutes: {min(p99s):.2f} to {max(p99s):.2f} ms (median "
            f"{sorted(p99s)[len(p99s) // 2]:.2f} ms)."
        ),
    ]
    return lines


def _contention(result: dict[str, Any]) -> str:
    busy = [m for m in result["minutes"] if m["other_cpu"] > 0.1]
    worst = max(m["other_cpu"] for m in result["minutes"])
    if not busy:
        return (
            f"Other processes used at most {worst:.2f} cores in any minute: the two cores "
            "were the server's and wrk's."
        )
    return (
        f"**Contended**: other processes (other engineers' tests) used more than 0.1 core in "
        f"{len(busy)} of {len(result['minutes'])} minutes (up to {worst:.2f} cores; per "
        "minute in the table). Latency in those minutes includes waiting for a core."
    )


def render(result: dict[str, Any], doc: str) -> str:
    args = result["args"]
    samples = result["rss"]
    ramp = "\n".join(
        f"| {r['concurrency']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
        f"{r['non_2xx'] + r['socket_errors']} |"
        for r in result["ramp"]
    )
    rss_mb = [b / 2**20 for _, b in samples]
    return "\n".join(
        [
            *report.header(
                f"Soak: `opsline serve house_price` at {args['fraction']:.0%} of its peak for "
                f"{args['minutes']} minutes",
                "benchmarks/soak.py",
                result,
            ),
            "## Method",
            "",
            doc.split("Method (", 1)[1].split("\n", 1)[1].strip(),
            "",
            "## Machine",
            "",
            report._machine(result["machine"], result["machine_after"]),
            "",
            _contention(result),
            "",
            "## Peak (closed loop)",
            "",
            "| connections | req/s | p50 ms | p99 ms | errors |",
            "|---|---|---|---|---|",
            ramp,
            "",
            (
                f"Peak {result['peak_rps']:,.0f} req/s; the soak held "
                f"{result['target_rps']:,.0f} req/s ({args['fraction']:.0%}) over "
                f"{result['connections']} connections."
            ),
            "",
            "## Minute by minute",
            "",
            *_minute_rows(result),
            "",
            (
                f"RSS sampled {len(samples)} times (every {args['sample_seconds']:g} s): "
                f"{min(rss_mb):.1f} to {max(rss_mb):.1f} MB."
                if samples
                else "No RSS sample."
            ),
            "",
            "## Targets",
            "",
            *_targets(result),
            "",
        ]
    )
