"""How fast does the CLI answer? `opsline --help` must stay well under a second.

Run: .venv/bin/python benchmarks/cli_startup.py [repeats]
Prints median / p90 wall time of `opsline --help` and `opsline recipes` in fresh processes,
and the slowest imports of `opsline.cli` (python -X importtime) so a regression is easy to pin.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def wall_times(args: list[str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "opsline", *args], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return sorted(times)


def slowest_imports(module: str, top: int = 5) -> list[tuple[int, str]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in result.stderr.splitlines()[1:]:
        parts = line.split("|")
        if len(parts) == 3:
            rows.append((int(parts[1]), parts[2].strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    for args in (["--help"], ["recipes"]):
        times = wall_times(args, repeats)
        p90 = times[int(0.9 * (len(times) - 1))]
        print(
            f"opsline {' '.join(args):<10} median {statistics.median(times) * 1000:6.0f} ms"
            f"   p90 {p90 * 1000:6.0f} ms   ({repeats} runs)"
        )
    print("slowest imports of opsline.cli (cumulative µs):")
    for micros, name in slowest_imports("opsline.cli"):
        print(f"  {micros:>9}  {name}")


if __name__ == "__main__":
    main()
