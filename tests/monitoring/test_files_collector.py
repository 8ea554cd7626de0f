"""FilesCollector: <workspace>/metrics/*.prom merged into the server's /metrics."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from opsline.monitoring.files import FilesCollector
from opsline.monitoring.metrics import ServingMetrics
from opsline.monitoring.textfile import metrics_dir

LOSS_A = """# HELP opsline_training_loss Loss.
# TYPE opsline_training_loss gauge
opsline_training_loss{model="a"} 0.5
# HELP opsline_training_steps_total Steps.
# TYPE opsline_training_steps_total counter
opsline_training_steps_total{model="a"} 12.0
"""
LOSS_B = """# HELP opsline_training_loss Loss.
# TYPE opsline_training_loss gauge
opsline_training_loss{model="b"} 0.25
"""


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(directory: Path, **kwargs) -> tuple[str, dict[tuple[str, tuple], float]]:
    registry = CollectorRegistry()
    registry.register(FilesCollector(lambda: directory, **kwargs))
    text = generate_latest(registry).decode()
    return text, parse(text)


def test_files_merged_by_family_and_aged(tmp_path: Path) -> None:
    (tmp_path / "training-a.prom").write_text(LOSS_A)
    (tmp_path / "training-b.prom").write_text(LOSS_B)
    old = time.time() - 3600
    os.utime(tmp_path / "training-b.prom", (old, old))
    (tmp_path / "notes.txt").write_text("not a metrics file")
    text, s = scrape(tmp_path)
    # One family with both models' series (a duplicate TYPE line would break Prometheus).
    assert text.count("# TYPE opsline_training_loss gauge") == 1
    assert s[("opsline_training_loss", (("model", "a"),))] == 0.5
    assert s[("opsline_training_loss", (("model", "b"),))] == 0.25
    assert s[("opsline_training_steps_total", (("model", "a"),))] == 12
    # Stale files are still shown, with their age.
    assert s[("opsline_metrics_file_age_seconds", (("file", "training-b.prom"),))] >= 3500
    assert s[("opsline_metrics_file_age_seconds", (("file", "training-a.prom"),))] < 3500
    assert not [k for k in s if ("file", "notes.txt") in k[1]]


def test_garbage_and_half_written_files_are_skipped(tmp_path: Path, caplog) -> None:
    (tmp_path / "training-a.prom").write_text(LOSS_A)
    (tmp_path / "garbage.prom").write_bytes(b"\x00\xff{{{ not prometheus }}}\n")
    (tmp_path / "half.prom").write_text(LOSS_B[:-12])  # cut in the middle of a sample
    with caplog.at_level(logging.WARNING, logger="opsline.monitoring.files"):
        _, s = scrape(tmp_path)
    assert s[("opsline_training_loss", (("model", "a"),))] == 0.5
    assert ("opsline_training_loss", (("model", "b"),)) not in s
    files = {dict(k[1])["file"] for k in s if k[0] == "opsline_metrics_file_age_seconds"}
    assert files == {"training-a.prom"}
    assert "garbage.prom" in caplog.text and "half.prom" in caplog.text


def test_each_file_version_is_parsed_once_and_replacements_are_seen(tmp_path: Path, caplog) -> None:
    registry = CollectorRegistry()
    registry.register(FilesCollector(lambda: tmp_path))
    (tmp_path / "garbage.prom").write_text("{{{ not prometheus\n")
    target = tmp_path / "training-a.prom"
    target.write_text(LOSS_A)
    with caplog.at_level(logging.WARNING, logger="opsline.monitoring.files"):
        for _ in range(3):  # the UI sampler and Prometheus both collect repeatedly
            generate_latest(registry)
    assert caplog.text.count("garbage.prom") == 1
    # A writer replaces the file atomically (new inode): the next collect shows the new value.
    staged = tmp_path / "staged"
    staged.write_text(LOSS_A.replace("0.5", "0.125"))
    staged.replace(target)
    s = parse(generate_latest(registry).decode())
    assert s[("opsline_training_loss", (("model", "a"),))] == 0.125
    target.unlink()
    s = parse(generate_latest(registry).decode())
    assert ("opsline_training_loss", (("model", "a"),)) not in s


def test_excluded_names_cannot_shadow_the_servers_own(tmp_path: Path) -> None:
    (tmp_path / "evil.prom").write_text(
        "# TYPE opsline_model_loaded gauge\nopsline_model_loaded 1\n" + LOSS_B
    )
    _, s = scrape(tmp_path, exclude={"opsline_model_loaded"})
    assert ("opsline_model_loaded", ()) not in s
    assert s[("opsline_training_loss", (("model", "b"),))] == 0.25


def test_missing_directory_is_not_an_error(tmp_path: Path) -> None:
    _, s = scrape(tmp_path / "nope")
    assert not [k for k in s if k[0] != "opsline_metrics_file_age_seconds"]


def test_serving_app_metrics_include_workspace_files() -> None:
    metrics = ServingMetrics()
    metrics.set_model("house_price", "1", "production", "gbm")
    (metrics_dir() / "training-a.prom").write_text(LOSS_A)
    (metrics_dir() / "clash.prom").write_text(
        "# TYPE opsline_model_loaded gauge\nopsline_model_loaded 0\n"
    )
    text = metrics.render().decode()
    s = parse(text)
    assert s[("opsline_training_loss", (("model", "a"),))] == 0.5
    # The server's own series wins; the file's copy is dropped, not duplicated.
    assert text.count("\nopsline_model_loaded ") == 1 and s[("opsline_model_loaded", ())] == 1
