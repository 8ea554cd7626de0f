"""Train (Lightning, through the shared trainer factory) and export the translation model.

Export = ``model.safetensors`` + ``config.json`` + ``generation_config.json`` (Hugging Face
``save_pretrained``), the tokenizer files, and the opsline card. No pickle anywhere: the
Lightning checkpoints live in a scratch directory and only their weights are reloaded.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from opsline.recipes.base import TrainedModel
from opsline.recipes.translation.batching import encode_pairs, loader
from opsline.recipes.translation.card import write_card
from opsline.recipes.translation.decoding import translate
from opsline.recipes.translation.metrics import corpus_scores, sample_table
from opsline.recipes.translation.model import Seq2SeqModule, build_network
from opsline.recipes.translation.tokenizer import train_tokenizer
from opsline.training.trainer import build_trainer, finish_fit


def _tokenizer(mcfg: Any, train: Any) -> Any:
    pretrained = mcfg.get("pretrained")
    if pretrained:
        from transformers import AutoTokenizer

        from opsline.errors import UsageError

        try:
            return AutoTokenizer.from_pretrained(str(pretrained))
        except (OSError, ValueError) as error:  # no tokenizer files, unknown id, offline
            raise UsageError(
                f"model.pretrained={pretrained} has no usable tokenizer: "
                f"{str(error).splitlines()[0]}"
            ) from None
    texts = list(train["da"]) + list(train["en"])
    return train_tokenizer(
        texts,
        int(mcfg.vocab_size),
        int(mcfg.get("min_frequency", 2)),
        max_length=int(mcfg.max_source_tokens),
    )


def _attribution_examples(frame: Any, limit: int = 5) -> list[str]:
    return [str(a) for a in frame["attribution"].drop_duplicates().head(limit)]


def train_translation(cfg: Any, dataset: Any, run: Any, out_dir: Path) -> TrainedModel:
    """Fit the tokenizer (from scratch) and the model on train, early-stop on val, export."""
    mcfg, ecfg = cfg.model, cfg.recipe.get("eval") or {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.trainer.get("accelerator", "cpu") == "cpu" and mcfg.get("num_threads"):
        torch.set_num_threads(int(mcfg.num_threads))
    train, val = dataset.frame("train"), dataset.frame("val")
    prefix = str(mcfg.get("source_prefix") or "")
    max_src, max_tgt = int(mcfg.max_source_tokens), int(mcfg.max_target_tokens)
    started, cpu_started = time.perf_counter(), time.process_time()
    tokenizer = _tokenizer(mcfg, train)
    train_pairs = encode_pairs(tokenizer, train["da"], train["en"], max_src, max_tgt, prefix)
    val_pairs = encode_pairs(tokenizer, val["da"], val["en"], max_src, max_tgt, prefix)
    pad_id = int(tokenizer.pad_token_id)

    n_bleu = int(mcfg.get("val_bleu_samples") or 0)
    bleu_src, bleu_ref = list(val["da"][:n_bleu]), list(val["en"][:n_bleu])

    def val_bleu(network: Any) -> float:
        hyps = translate(
            network,
            tokenizer,
            bleu_src,
            max_new_tokens=max_tgt,
            prefix=prefix,
            max_source_tokens=max_src,
        )
        return corpus_scores(hyps, bleu_ref)["bleu"]

    patience = mcfg.get("patience")
    with tempfile.TemporaryDirectory(prefix="opsline-translation-") as work:
        trainer = build_trainer(
            cfg,
            default_max_epochs=int(mcfg.max_epochs),
            work_dir=Path(work),
            patience=None if patience is None else int(patience),
            run=run,
        )
        network = build_network(mcfg, tokenizer)  # after build_trainer: seeded init
        module = Seq2SeqModule(
            network,
            lr=float(mcfg.lr),
            weight_decay=float(mcfg.weight_decay),
            warmup_steps=int(mcfg.warmup_steps),
            label_smoothing=float(mcfg.label_smoothing),
            grad_clip=float(mcfg.grad_clip),
            pad_id=pad_id,
            bleu_fn=val_bleu if n_bleu else None,
        )
        seed = int(cfg.get("seed", 42))
        trainer.fit(
            module,
            loader(train_pairs, int(mcfg.batch_size), pad_id, True, seed),
            loader(val_pairs, 2 * int(mcfg.batch_size), pad_id, False),
        )
        best = finish_fit(trainer, module, run, Path(work))
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started  # all threads; robust to a busy machine
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bars are noise in CLI output
    network = module.network.cpu().eval()
    network.generation_config.num_beams = 1
    network.generation_config.max_new_tokens = max_tgt
    network.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    run.log_metrics(
        {
            "train_seconds": seconds,
            "train_cpu_seconds": cpu_seconds,
            "epochs_trained": trainer.current_epoch,
            "parameters": sum(p.numel() for p in network.parameters()),
        }
    )
    _log_samples(
        run, network, tokenizer, val, int(ecfg.get("samples", 20)), prefix, max_src, max_tgt
    )
    kind = "pretrained" if mcfg.get("pretrained") else "marian"
    config = network.config
    write_card(
        out_dir,
        kind,
        model_name=str(mcfg.name),
        source_prefix=prefix,
        max_source_tokens=max_src,
        max_new_tokens=max_tgt,
        tokenizer={
            "vocab_size": len(tokenizer),
            "pad_id": pad_id,
            "eos_id": int(tokenizer.eos_token_id),
        },
        architecture={
            "summary": f"{config.model_type}, d_model "
            f"{getattr(config, 'd_model', '?')}, "
            f"{sum(p.numel() for p in network.parameters()):,} "
            f"parameters",
            "pretrained": mcfg.get("pretrained"),
        },
        data={
            "source": str(cfg.recipe.data.get("source")),
            "version": getattr(dataset, "version", None),
            "train_pairs": len(train),
            "attribution_examples": _attribution_examples(train),
        },
        training={
            "epochs": trainer.current_epoch,
            "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1),
            "threads": torch.get_num_threads(),
            "best_checkpoint": Path(best).name if best else None,
        },
    )
    return TrainedModel(model_dir=out_dir, kind=kind)


def _log_samples(
    run: Any,
    network: Any,
    tokenizer: Any,
    frame: Any,
    n: int,
    prefix: str,
    max_src: int,
    max_tgt: int,
) -> None:
    """Greedy and 4-beam translations of the first ``n`` val pairs, as a TSV artifact."""
    if n <= 0:
        return
    sources, refs = list(frame["da"][:n]), list(frame["en"][:n])
    kwargs = {"prefix": prefix, "max_source_tokens": max_src, "max_new_tokens": max_tgt}
    columns = {
        "greedy": translate(network, tokenizer, sources, num_beams=1, **kwargs),
        "beam4": translate(network, tokenizer, sources, num_beams=4, **kwargs),
    }
    run.log_text(sample_table(sources, refs, columns), "samples/val_translations.tsv")
