"""Batching, label masking, schedule and the Lightning module's loss."""

from __future__ import annotations

import torch

from opsline.recipes.translation.batching import BucketBatchSampler, Collator, encode_pairs
from opsline.recipes.translation.config import TranslationModelConfig
from opsline.recipes.translation.model import (
    IGNORE_INDEX,
    Seq2SeqModule,
    build_network,
    warmup_decay,
)


def test_label_padding_is_masked_and_sources_are_padded():
    batch = Collator(pad_id=0)([([5, 6, 7, 1], [8, 1]), ([9, 1], [10, 11, 12, 1])])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 1], [9, 1, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[8, 1, IGNORE_INDEX, IGNORE_INDEX], [10, 11, 12, 1]]


def test_tokenized_pairs_end_with_eos_and_prefix_is_added_once(sentences):
    from opsline.recipes.translation.tokenizer import train_tokenizer

    tok = train_tokenizer(sentences, vocab_size=300, min_frequency=1)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    ((src, tgt),) = encode_pairs(tok, ["Hej."], ["Hi."], 32, 32, prefix="oversæt: ")
    assert src[-1] == tgt[-1] == tok.eos_token_id
    assert tok.decode(src, skip_special_tokens=True).strip() == "oversæt: Hej."
    assert tok.decode(tok("Æblet 🙂")["input_ids"], skip_special_tokens=True).strip() == "Æblet 🙂"


def test_bucket_sampler_covers_every_pair_once_with_similar_lengths():
    lengths = [i % 37 for i in range(1000)]
    sampler = BucketBatchSampler(lengths, batch_size=32, shuffle=True, seed=1, pool_batches=10)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert len(batches) == len(sampler)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread / len(batches) < 5  # vs ~36 for random batches
    assert list(sampler) != batches  # reshuffled next epoch


def test_warmup_then_decay():
    values = [warmup_decay(s, warmup=10, total=100) for s in range(100)]
    assert values[0] < values[5] < values[9] == 1.0
    assert values[50] < 1.0 and values[99] < 0.1


def test_module_loss_ignores_padding(sentences):
    from opsline.recipes.translation.tokenizer import train_tokenizer

    tok = train_tokenizer(sentences, vocab_size=300, min_frequency=1)
    mcfg = TranslationModelConfig(
        d_model=16, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=32, dropout=0.0
    )
    torch.manual_seed(0)
    module = Seq2SeqModule(
        build_network(mcfg, tok),
        lr=1e-3,
        weight_decay=0.0,
        warmup_steps=1,
        label_smoothing=0.0,
        grad_clip=1.0,
        pad_id=0,
    )
    module.network.eval()
    pair = encode_pairs(tok, ["Hej."], ["Hi."], 32, 32)
    alone = Collator(0)(pair)
    padded = Collator(0)(pair + encode_pairs(tok, ["Hej."], ["Hi there, how are you?"], 32, 32))
    logits_alone = module._logits(alone)
    logits_padded = module._logits(padded)[:1, : logits_alone.size(1)]
    loss_alone = module.plain(logits_alone.flatten(0, 1), alone["labels"].flatten())
    row = padded["labels"][:1, : logits_alone.size(1)]
    loss_padded = module.plain(logits_padded.flatten(0, 1), row.flatten())
    assert torch.allclose(loss_alone, loss_padded, atol=1e-5)
    assert (padded["labels"][0] == IGNORE_INDEX).sum() > 0
