"""Train (Lightning, through the shared trainer factory) and export the translation model.

Export = ``model.safetensors`` + ``config.json`` + ``generation_config.json`` (Hugging Face
``save_pretrained``), the tokenizer files, and the opsline card. No pickle anywhere: the
Lightning checkpoints live in a scratch directory and only their weights are reloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from opsline.config import settings
from opsline.recipes.base import TrainedModel
from opsline.recipes.translation.batching import encode_pairs, loader
from opsline.recipes.translation.card import write_card
from opsline.recipes.translation.config import TranslationModelConfig
from opsline.recipes.translation.decoding import translate
from opsline.recipes.translation.metrics import corpus_scores, sample_table
from opsline.recipes.translation.model import Seq2SeqModule, build_network
from opsline.recipes.translation.tokenizer import train_tokenizer
from opsline.training.fit import TrainingSession, count_parameters

if TYPE_CHECKING:  # pragma: no cover
    from opsline.tracking.runs import TrainingRun


def _tokenizer(mcfg: TranslationModelConfig, train: Any) -> Any:
    pretrained = mcfg.pretrained
    if pretrained:
        from transformers import AutoTokenizer

        from opsline.errors import UsageError

        try:
            return AutoTokenizer.from_pretrained(pretrained)
        except (OSError, ValueError) as error:  # no tokenizer files, unknown id, offline
            raise UsageError(
                f"model.pretrained={pretrained} has no usable tokenizer: "
                f"{str(error).splitlines()[0]}"
            ) from None
    texts = list(train["da"]) + list(train["en"])
    return train_tokenizer(
        texts, mcfg.vocab_size, mcfg.min_frequency, max_length=mcfg.max_source_tokens
    )


def _attribution_examples(frame: Any, limit: int = 5) -> list[str]:
    return [str(a) for a in frame["attribution"].drop_duplicates().head(limit)]


def train_translation(cfg: Any, dataset: Any, run: TrainingRun, out_dir: Path) -> TrainedModel:
    """Fit the tokenizer (from scratch) and the model on train, early-stop on val, export."""
    mcfg, ecfg = settings(TranslationModelConfig, cfg.model), cfg.recipe.get("eval") or {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.trainer.get("accelerator", "cpu") == "cpu" and mcfg.num_threads:
        torch.set_num_threads(mcfg.num_threads)
    train, val = dataset.frame("train"), dataset.frame("val")
    prefix = mcfg.source_prefix or ""
    max_src, max_tgt = mcfg.max_source_tokens, mcfg.max_target_tokens
    with TrainingSession(cfg, run, "translation") as session:
        tokenizer = _tokenizer(mcfg, train)
        train_pairs = encode_pairs(tokenizer, train["da"], train["en"], max_src, max_tgt, prefix)
        val_pairs = encode_pairs(tokenizer, val["da"], val["en"], max_src, max_tgt, prefix)
        pad_id = int(tokenizer.pad_token_id)

        n_bleu = mcfg.val_bleu_samples
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

        session.build_trainer(default_max_epochs=mcfg.max_epochs, patience=mcfg.patience)
        network = build_network(mcfg, tokenizer)  # after build_trainer: seeded init
        module = Seq2SeqModule(
            network,
            lr=mcfg.lr,
            weight_decay=mcfg.weight_decay,
            warmup_steps=mcfg.warmup_steps,
            label_smoothing=mcfg.label_smoothing,
            grad_clip=mcfg.grad_clip,
            pad_id=pad_id,
            bleu_fn=val_bleu if n_bleu else None,
        )
        seed = int(cfg.get("seed", 42))
        session.fit(
            module,
            loader(train_pairs, mcfg.batch_size, pad_id, True, seed),
            loader(val_pairs, 2 * mcfg.batch_size, pad_id, False),
        )
        result = session.finish()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bars are noise in CLI output
    network = module.network.cpu().eval()
    network.generation_config.num_beams = 1
    network.generation_config.max_new_tokens = max_tgt
    network.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    parameters = count_parameters(network)
    run.log_metrics(result.metrics(parameters=parameters))
    _log_samples(
        run, network, tokenizer, val, int(ecfg.get("samples", 20)), prefix, max_src, max_tgt
    )
    kind = "pretrained" if mcfg.pretrained else "marian"
    config = network.config
    write_card(
        out_dir,
        kind,
        model_name=mcfg.name,
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
            f"{parameters:,} "
            f"parameters",
            "pretrained": mcfg.pretrained,
        },
        data={
            "source": str(cfg.recipe.data.get("source")),
            "version": getattr(dataset, "version", None),
            "train_pairs": len(train),
            "attribution_examples": _attribution_examples(train),
        },
        training=result.card(
            threads=torch.get_num_threads(),
            best_checkpoint=Path(result.best_checkpoint).name if result.best_checkpoint else None,
        ),
    )
    return TrainedModel(model_dir=out_dir, kind=kind)


def _log_samples(
    run: TrainingRun,
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
