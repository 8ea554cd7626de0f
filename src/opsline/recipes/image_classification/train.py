"""Train an image classifier (Lightning, the shared trainer factory) and export it.

Images are decoded once through ``images.decode`` (the serving path), resized and cached as
one ``uint8`` tensor per split; augmentation runs on batches inside the module.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from opsline.recipes.base import TrainedModel
from opsline.recipes.image_classification import backbones, images
from opsline.recipes.image_classification.card import WEIGHTS, write_card
from opsline.recipes.image_classification.data import decode_limits, image_bytes, label_space
from opsline.recipes.image_classification.module import FreezeSchedule, ImageClassifier
from opsline.recipes.image_classification.preprocessing import Preprocessing
from opsline.recipes.image_classification.sources import ATTR_PREFIX
from opsline.training.trainer import build_trainer, finish_fit


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
    cfg: Any, frames: dict[str, Any], run: Any, out_dir: Path, data_version: str | None = None
) -> TrainedModel:
    """Fit ``cfg.model`` on ``frames["train"]`` (selecting on ``frames["val"]``), export."""
    from safetensors.torch import save_file

    mcfg, dcfg = cfg.model, cfg.data
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    task, names = label_space(cfg, frames["train"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="opsline-image-") as work:
        # build_trainer seeds everything: build the network after it (reproducible init).
        freeze = FreezeSchedule(int(mcfg.get("freeze_epochs", 0)))
        selection = str(mcfg.get("checkpoint", "best"))
        monitor = str(mcfg.get("monitor", "val_loss"))
        trainer = build_trainer(
            cfg,
            default_max_epochs=int(mcfg.max_epochs),
            work_dir=Path(work),
            patience=mcfg.get("patience"),
            run=run,
            callbacks=[freeze],
            monitor=monitor,
            mode="max" if monitor.endswith("acc") else "min",
        )
        size = int(mcfg.get("image_size") or dcfg.get("image_size", 224))
        net, arch = backbones.create(mcfg, len(names), int(dcfg.get("channels", 3)), size)
        pre = Preprocessing.from_config(dcfg, mcfg, imagenet=arch.get("pretrained") != "none")
        train_set = TensorDataset(
            load_images(frames["train"], pre, dcfg), targets(frames["train"], task, names)
        )
        val_set = TensorDataset(
            load_images(frames["val"], pre, dcfg), targets(frames["val"], task, names)
        )
        decoded_seconds = time.perf_counter() - started
        module = ImageClassifier(
            net,
            pre,
            task,
            backbone_lr=float(mcfg.backbone_lr),
            head_lr=float(mcfg.head_lr),
            weight_decay=float(mcfg.weight_decay),
            augment_level=str(mcfg.augment),
            orientation_invariant=bool(dcfg.get("orientation_invariant", False)),
            background=float(dcfg.get("background", 0.0)),
            label_smoothing=float(mcfg.get("label_smoothing", 0.0)),
            scheduler=str(mcfg.get("scheduler", "cosine")),
            max_epochs=trainer.max_epochs,
        )
        fit = str(mcfg.get("fit", "lightning"))
        if fit == "probe":  # closed-form linear probe on frozen features (probe.py)
            from opsline.recipes.image_classification.probe import fit_probe

            selection = "probe"
            run.log_metrics(
                fit_probe(
                    net,
                    pre,
                    *train_set.tensors,
                    task,
                    c=float(mcfg.get("probe_c", 0.01)),
                    orientation_invariant=bool(dcfg.get("orientation_invariant", False)),
                )
            )
        elif fit == "lightning":
            generator = torch.Generator().manual_seed(int(cfg.get("seed", 42)))
            batch = int(mcfg.batch_size)
            trainer.fit(
                module,
                DataLoader(train_set, batch_size=batch, shuffle=True, generator=generator),
                DataLoader(val_set, batch_size=max(batch, 256)),
            )
        else:
            from opsline.errors import UsageError

            raise UsageError(f"model.fit must be lightning or probe, not {fit!r}.")
        finish_fit(trainer, module, run, Path(work), restore_best=selection == "best")
    seconds = time.perf_counter() - started
    run.log_metrics(
        {
            "train_seconds": seconds,
            "decode_seconds": decoded_seconds,
            "epochs_trained": trainer.current_epoch,
        }
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
        threshold=float(mcfg.get("threshold", 0.5)),
        data_name=str(dcfg.name),
        data_version=data_version,
        training={
            "epochs": trainer.current_epoch,
            "seconds": round(seconds, 1),
            "selection": selection,
            "monitor": monitor,
            "train_images": len(train_set),
            "val_images": len(val_set),
        },
    )
    return TrainedModel(model_dir=out_dir, kind=kind)
