"""Corpus BLEU and chrF with SacreBLEU on detokenized text (its default 13a tokenization).

One reference per pair, the standard Tatoeba test-set convention: a Danish sentence with
three English translations is three test pairs (translated once, scored three times).
"""

from __future__ import annotations

from collections.abc import Sequence


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """``{"bleu": ..., "chrf": ...}`` (0-100) for aligned hypotheses and references."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not hypotheses:
        return {"bleu": 0.0, "chrf": 0.0}
    hyps, refs = list(hypotheses), [list(references)]
    return {
        "bleu": float(sacrebleu.corpus_bleu(hyps, refs).score),
        "chrf": float(sacrebleu.corpus_chrf(hyps, refs).score),
    }


def sample_table(
    sources: Sequence[str], references: Sequence[str], columns: dict[str, Sequence[str]]
) -> str:
    """A TSV of source, reference and one column per decoding (logged as an artifact)."""
    names = list(columns)
    lines = ["\t".join(["source", "reference", *names])]
    for i, (src, ref) in enumerate(zip(sources, references, strict=True)):
        cells = [src, ref, *(columns[n][i] for n in names)]
        lines.append("\t".join(c.replace("\t", " ") for c in cells))
    return "\n".join(lines) + "\n"
