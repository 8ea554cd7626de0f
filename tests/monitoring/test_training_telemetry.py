"""TrainingTelemetry: a real Lightning fit through build_trainer writes the .prom file."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from opsline.monitoring.metrics import ServingMetrics
from opsline.monitoring.textfile import metrics_path, read_samples
from opsline.monitoring.training import batch_size, batch_tokens, model_label
from opsline.training.trainer import build_trainer
from tests.training.tiny import CPU, loaders, make_cfg, tiny_module


def value(samples: dict, name: str, model: str = "tiny") -> float:
    return samples[(name, (("model", model),))]


def test_fit_writes_increasing_steps_and_ends_not_running(tmp_path) -> None:
    import lightning.pytorch as pl

    path = metrics_path("training", "tiny")
    seen: list[dict] = []
    first: dict = {}

    class ReadFile(pl.Callback):
        """Reads the file at each epoch start, i.e. after the previous epoch's write."""

        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch > 0:
                seen.append(read_samples(path))
            else:  # written at fit start, before any validation: "no value", never a 0 loss
                first.update(read_samples(path))

    cfg = make_cfg(seed=1, max_epochs=3)
    trainer = build_trainer(
        cfg, default_max_epochs=3, work_dir=tmp_path, model_name="tiny", callbacks=[ReadFile()]
    )
    trainer.fit(tiny_module(lr=0.05), *loaders())

    final = read_samples(path)
    assert math.isnan(value(first, "opsline_validation_loss"))
    steps = [value(s, "opsline_training_steps_total") for s in [*seen, final]]
    assert steps == [4, 8, 12]  # 64 rows / 16 per batch = 4 optimizer steps per epoch
    assert [value(s, "opsline_training_running") for s in seen] == [1, 1]
    assert value(final, "opsline_training_running") == 0
    assert [value(s, "opsline_training_epoch") for s in [*seen, final]] == [0, 1, 2]
    assert value(final, "opsline_training_epoch_progress") == 1
    assert value(final, "opsline_training_samples_per_second") > 0
    # Tabular batches carry no token counts: no made-up tokens/s.
    assert value(final, "opsline_training_tokens_per_second") == 0
    # The latest batch loss and the val_loss the module logged, both real numbers that fell.
    loss, val = value(final, "opsline_training_loss"), value(final, "opsline_validation_loss")
    assert math.isfinite(loss) and math.isfinite(val)
    assert val == pytest.approx(float(trainer.callback_metrics["val_loss"]))
    assert value(seen[0], "opsline_validation_loss") > val

    # The server in the same workspace shows the same figures on /metrics.
    from prometheus_client.parser import text_string_to_metric_families

    text = ServingMetrics().render().decode()
    served = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert value(served, "opsline_training_steps_total") == 12
    assert value(served, "opsline_training_running") == 0


def test_failed_fit_is_marked_not_running(tmp_path) -> None:
    cfg = make_cfg(seed=1, max_epochs=3)
    trainer = build_trainer(cfg, default_max_epochs=3, work_dir=tmp_path, model_name="tiny")
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(tiny_module(lr=0.05, fail_at_step=5), *loaders())
    final = read_samples(metrics_path("training", "tiny"))
    assert value(final, "opsline_training_running") == 0
    assert value(final, "opsline_training_steps_total") == 5


def test_model_label_is_the_registered_model_name() -> None:
    from opsline.config import load_config

    assert model_label(load_config("house_price")) == "house_price"
    assert (
        model_label(load_config("translation", ["recipe.data.source=gettext"]))
        == "translation_gettext"
    )
    assert model_label(OmegaConf.create({"trainer": CPU})) == "unknown"


def test_batch_rows_and_tokens() -> None:
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    text = {"input_ids": torch.zeros(2, 4, dtype=torch.long), "attention_mask": mask}
    assert batch_size(text) == 2 and batch_tokens(text) == 5  # padding is not counted
    assert batch_tokens({"input_ids": torch.zeros(3, 7)}) == 21
    assert batch_size((torch.zeros(5, 3), torch.zeros(5))) == 5
    assert batch_tokens((torch.zeros(5, 3), torch.zeros(5))) is None
    assert batch_size("not a batch") is None
