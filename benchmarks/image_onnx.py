"""Images/s of the image classifier: native torch vs ONNX Runtime, batch 1 / 4 / 8, one core.

Measures ``predictor.predict(requests)`` — resize + normalise, the network on every TTA view,
softmax and the view average, the response objects — i.e. what one batch of ``POST /predict``
costs besides HTTP, JSON and base64 (requests are validated, hence decoded, beforehand).
Both backends run the same predictor code; only the network call differs.

Without ``--model-dir`` it builds MobileNetV2 (timm ``mobilenetv2_100``, the recipe's default,
packaged ImageNet weights, an untrained 5-class head — speed does not depend on it) at the
grapevine size (288 px) in a temporary directory, exports ``model.onnx`` with the recipe's
exporter and writes its parity record (on the generated images)::

    python benchmarks/image_onnx.py [--model-dir DIR] [--seconds 2] [--core N] [--rows]

``--rows`` adds the network alone (no pre/post-processing) at 1–64 rows per call: where
the predictor's ``MAX_ROWS`` comes from.

Pins itself to one core (``os.sched_setaffinity``), one torch thread and one ONNX Runtime
thread (``OPSLINE_ORT_THREADS=1``, the server default). Results: ``benchmarks/image_onnx.md``.

``offline_batched_images_per_second(model_dir, batch, seconds)`` is the ONNX Runtime figure
as a function, for the serving benchmark to compare the server with (same cores: the caller
pins them; same threads: ``OPSLINE_ORT_THREADS``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

BATCHES = (1, 4, 8)


def sample_images(count: int = 8) -> list[bytes]:
    """``count`` generated PNGs (leaf and box shapes, 96–192 px): offline, deterministic."""
    from opsline.recipes.image_classification import sample_image

    return [sample_image("leaf" if i % 2 == 0 else "box", 96 + 16 * i) for i in range(count)]


def requests_for(images: list[bytes], batch: int) -> list[Any]:
    """``batch`` validated requests, cycling through ``images`` (decoded once, here)."""
    from opsline.recipes.image_classification.schemas import ImageRequest

    return [ImageRequest.from_bytes(images[i % len(images)], top_k=5) for i in range(batch)]


def measure(call: Any, items: int, seconds: float) -> tuple[float, float]:
    """``(per wall second, per CPU second)`` of ``items`` per ``call()``, for ``seconds``.

    The CPU-time rate is this process's own work: on a core shared with other jobs the wall
    rate drops by whatever they take, the CPU rate much less (caches are still shared).
    """
    call()  # warm-up: the first call allocates buffers and picks kernels
    done, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        call()
        done += items
    return (done / (time.perf_counter() - start), done / max(time.process_time() - cpu, 1e-9))


def images_per_second(predictor: Any, requests: list[Any], seconds: float) -> float:
    """Images/s (wall clock) of ``predictor.predict(requests)`` back to back."""
    return measure(lambda: predictor.predict(requests), len(requests), seconds)[0]


def offline_batched_images_per_second(
    model_dir: Path, batch: int, seconds: float, images: list[bytes] | None = None
) -> float:
    """Images/s of ONNX Runtime on ``model_dir`` with batches of ``batch`` requests.

    The number a perfect server would reach on the same cores: no HTTP, no queueing, every
    batch full. ``model_dir`` must hold a ``model.onnx`` that passed parity (``ModelLoadError``
    otherwise). Threads: ``OPSLINE_ORT_THREADS`` (default 1), as in the server; cores: the
    caller's affinity. ``images``: encoded files to send (default: ``sample_images()``).
    """
    from opsline.recipes.image_classification.predictor import load_predictor

    predictor = load_predictor(Path(model_dir), "onnx")
    return images_per_second(predictor, requests_for(images or sample_images(), batch), seconds)


def network_rows_per_second(model_dir: Path, rows: int, seconds: float) -> tuple[float, float]:
    """``(torch, onnx)`` rows per CPU second of the bare network, ``rows`` images per call."""
    import numpy as np
    import torch

    from opsline.export.backend import ort_session
    from opsline.export.parity import ONNX_FILE
    from opsline.recipes.image_classification.card import read_card
    from opsline.recipes.image_classification.predictor import load_network
    from opsline.recipes.image_classification.preprocessing import Preprocessing

    size = Preprocessing.load(model_dir).image_size
    net, session = (
        load_network(model_dir, read_card(model_dir)),
        ort_session(Path(model_dir) / ONNX_FILE),
    )
    x = np.random.default_rng(0).standard_normal((rows, 3, size, size), dtype=np.float32)
    with torch.inference_mode():
        native = measure(lambda: net(torch.from_numpy(x)), rows, seconds)
    return native[1], measure(lambda: session.run(None, {"pixels": x}), rows, seconds)[1]


def build_model_dir(out: Path, image_size: int = 288, tta: str = "dihedral") -> Path:
    """A MobileNetV2 model directory like ``train`` writes, plus ``model.onnx`` + parity."""
    import pandas as pd
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    from opsline.export.parity import write_parity
    from opsline.recipes.image_classification import backbones
    from opsline.recipes.image_classification.card import WEIGHTS, write_card
    from opsline.recipes.image_classification.onnx_export import check_parity, export_network
    from opsline.recipes.image_classification.preprocessing import Preprocessing

    out.mkdir(parents=True, exist_ok=True)
    cfg = OmegaConf.create(
        {
            "name": "mobilenetv2",
            "arch": "mobilenetv2_100",
            "pretrained": "package",
            "dropout": 0.3,
            "head_norm": True,
        }
    )
    net, arch = backbones.create(cfg, num_classes=5, in_chans=3)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out / WEIGHTS))
    pre = Preprocessing(image_size, 3, backbones.IMAGENET_MEAN, backbones.IMAGENET_STD, tta)
    pre.save(out)
    write_card(
        out,
        kind=arch["name"],
        task="multiclass",
        classes=["Ak", "Ala_Idris", "Buzgulu", "Dimnit", "Nazli"],
        architecture=arch,
        threshold=0.5,
        data_name="benchmark",
    )
    exporter = export_network(net, out / "model.onnx", 3, image_size)
    record = check_parity(out, pd.DataFrame({"image": sample_images()}), exporter=exporter)
    write_parity(out, record)
    if not record.passed:
        raise SystemExit(f"model.onnx failed parity: {record.reason}")
    return out


def with_tta(model_dir: Path, tta: str, work: Path) -> Path:
    """A copy of ``model_dir`` whose preprocessing uses ``tta`` (symlinked weights)."""
    import json

    if json.loads((model_dir / "preprocessing.json").read_text()).get("tta", "none") == tta:
        return model_dir
    copy = work / f"tta-{tta}"
    copy.mkdir(exist_ok=True)
    for path in model_dir.iterdir():
        if path.name != "preprocessing.json" and not (copy / path.name).exists():
            (copy / path.name).symlink_to(path.resolve())
    raw = json.loads((model_dir / "preprocessing.json").read_text())
    (copy / "preprocessing.json").write_text(json.dumps({**raw, "tta": tta}))
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="an exported model (default: build one)")
    parser.add_argument("--image-size", type=int, default=288, help="when building")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--core", type=int, default=None, help="CPU to pin (default: the last)")
    parser.add_argument("--rows", action="store_true", help="also the bare network, 1-64 rows")
    args = parser.parse_args()

    core = args.core if args.core is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    os.environ["OPSLINE_ORT_THREADS"] = "1"
    import onnxruntime
    import torch

    torch.set_num_threads(1)
    from opsline.recipes.image_classification.predictor import load_predictor

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="image-onnx-") as tmp:
        work = Path(tmp)
        model_dir = args.model_dir or build_model_dir(work / "model", args.image_size)
        built = time.perf_counter() - started
        images = sample_images()
        rows = []
        for tta in ("none", "dihedral"):
            directory = with_tta(model_dir, tta, work)
            native = load_predictor(directory, "native")
            onnx = load_predictor(directory, "onnx")
            for batch in BATCHES:
                requests = requests_for(images, batch)
                a = measure(partial(native.predict, requests), batch, args.seconds)
                b = measure(partial(onnx.predict, requests), batch, args.seconds)
                rows.append((tta, batch, a, b))
                print(
                    f"tta={tta:8s} batch={batch}: torch {a[0]:6.1f} img/s, "
                    f"ONNX Runtime {b[0]:6.1f} img/s (wall); per CPU-s {a[1]:6.1f} vs "
                    f"{b[1]:6.1f} ({b[1] / a[1]:.2f}x)",
                    flush=True,
                )
        size = native.pre.image_size
        network = [
            (r, *network_rows_per_second(model_dir, r, args.seconds / 2))
            for r in ((1, 2, 4, 8, 16, 32, 64) if args.rows else ())
        ]
    print(
        f"\nMobileNetV2 ({native.kind}) at {size} px, core {core}, torch "
        f"{torch.__version__} (1 thread), onnxruntime {onnxruntime.__version__} (1 thread); "
        f"setup {built:.0f} s, total {time.perf_counter() - started:.0f} s\n"
    )
    print(
        "| TTA | batch | torch img/s (wall) | ONNX Runtime img/s (wall) | torch img/CPU-s "
        "| ONNX Runtime img/CPU-s | ONNX / torch (CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tta, batch, a, b in rows:
        print(
            f"| {tta} | {batch} | {a[0]:.1f} | {b[0]:.1f} | {a[1]:.1f} | {b[1]:.1f} "
            f"| {b[1] / a[1]:.2f}x |"
        )
    if network:
        print("\n| rows per call | torch rows/CPU-s | ONNX Runtime rows/CPU-s |\n|---:|---:|---:|")
        for rows, a, b in network:
            print(f"| {rows} | {a:.1f} | {b:.1f} |")


if __name__ == "__main__":
    main()
