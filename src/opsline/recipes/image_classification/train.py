"""Train an image classifier (Lightning, the shared trainer factory) and export it.

Images are decoded once through ``images.decode`` (the serving path), resized and cached as
one ``uint8`` tensor per split; augmentation runs on batches inside the module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from opsline.config import settings
from opsline.recipes.base import TrainedModel
from opsline.recipes.image_classification import backbones, images
from opsline.recipes.image_classification.card import WEIGHTS, write_card
from opsline.recipes.image_classification.config import ImageModelConfig
from opsline.recipes.image_classification.data import decode_limits, image_bytes, label_space
from opsline.recipes.image_classification.module import FreezeSchedule, ImageClassifier
from opsline.recipes.image_classification.preprocessing import Preprocessing
from opsline.recipes.image_classification.sources import ATTR_PREFIX
from opsline.training.fit import TrainingSession, count_parameters

if TYPE_CHECKING:  # pragma: no cover
    from opsline.tracking.runs import TrainingRun


def load_images(frame: Any, pre: Preprocessing, data_cfg: Any) -> torch.Tensor:
    """Decode and resize every image of ``frame`` into one ``uint8`` N×C×H×W tensor."""
    limits = decode_limits(data_cfg)
    return pre.stack(
        [images.decode(image_bytes(row), **limits).image for row in frame.to_dict("records")]
    )


def targets(frame: Any, task: str, names: list[str]) -> torch.Tensor:
    """Class indices (multi-class) or an N×K 0/1 matrix (multi-label)."""
    if task == "multilabel":
        return torch.tensor(frame[[ATTR_PREFIX + n for n in names]].to_numpy(), dtype=torch.long)
    index = {n: i for i, n in enumerate(names)}
    return torch.tensor([index[str(v)] for v in frame["label"]], dtype=torch.long)


def train_classifier(
    cfg: Any,
    frames: dict[str, Any],
    run: TrainingRun,
    out_dir: Path,
    data_version: str | None = None,
) -> TrainedModel:
    """Fit ``cfg.model`` on ``frames["train"]`` (selecting on ``frames["val"]``), export."""
    from safetensors.torch import save_file

    mcfg, dcfg = settings(ImageModelConfig, cfg.model), cfg.data
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    task, names = label_space(cfg, frames["train"])
    orientation_invariant = bool(dcfg.get("orientation_invariant", False))
    selection: str = mcfg.checkpoint
    with TrainingSession(cfg, run, "image", restore_best=selection == "best") as session:
        # build_trainer seeds everything: build the network after it (reproducible init).
        trainer = session.build_trainer(
            default_max_epochs=mcfg.max_epochs,
            patience=mcfg.patience,
            callbacks=[FreezeSchedule(mcfg.freeze_epochs)],
            monitor=mcfg.monitor,
            mode="max" if mcfg.monitor.endswith("acc") else "min",
        )
        size = int(mcfg.image_size or dcfg.get("image_size", 224))
        net, arch = backbones.create(mcfg, len(names), int(dcfg.get("channels", 3)), size)
        pre = Preprocessing.from_config(dcfg, mcfg, imagenet=arch.get("pretrained") != "none")
        train_set = TensorDataset(
            load_images(frames["train"], pre, dcfg), targets(frames["train"], task, names)
        )
        val_set = TensorDataset(
            load_images(frames["val"], pre, dcfg), targets(frames["val"], task, names)
        )
        decoded_seconds = session.clock.seconds
        module = ImageClassifier(
            net,
            pre,
            task,
            backbone_lr=mcfg.backbone_lr,
            head_lr=mcfg.head_lr,
            weight_decay=mcfg.weight_decay,
            augment_level=mcfg.augment,
            orientation_invariant=orientation_invariant,
            background=float(dcfg.get("background", 0.0)),
            label_smoothing=mcfg.label_smoothing,
            scheduler=mcfg.scheduler,
            max_epochs=trainer.max_epochs,
        )
        if mcfg.fit == "probe":  # closed-form linear probe on frozen features (probe.py)
            from opsline.recipes.image_classification.probe import fit_probe

            selection = "probe"
            run.log_metrics(
                fit_probe(
                    net,
                    pre,
                    *train_set.tensors,
                    task,
                    c=mcfg.probe_c,
                    orientation_invariant=orientation_invariant,
                )
            )
        else:
            generator = torch.Generator().manual_seed(int(cfg.get("seed", 42)))
            session.fit(
                module,
                DataLoader(
                    train_set, batch_size=mcfg.batch_size, shuffle=True, generator=generator
                ),
                DataLoader(val_set, batch_size=max(mcfg.batch_size, 256)),
            )
        result = session.finish(module)
    run.log_metrics(
        result.metrics(parameters=count_parameters(module.net), decode_seconds=decoded_seconds)
    )
    state = {k: v.detach().cpu().contiguous() for k, v in module.net.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS))
    pre.save(out_dir)
    kind = arch["name"]
    write_card(
        out_dir,
        kind=kind,
        task=task,
        classes=names,
        architecture=arch,
        threshold=mcfg.threshold,
        data_name=str(dcfg.name),
        data_version=data_version,
        training=result.card(
            selection=selection,
            monitor=mcfg.monitor,
            train_images=len(train_set),
            val_images=len(val_set),
        ),
    )
    return TrainedModel(model_dir=out_dir, kind=kind)
