"""The sequence classifier fine-tuning trains: input encoding, batches, model, metrics.

Input format. A sentence pair is ``[CLS] s1 [SEP] s2 [SEP]``, a single sentence ``[CLS] s [SEP]``,
right-padded with ``[PAD]``. The length limit is ``min(finetune.max_len, model seq_len)``; a pair
that does not fit is shortened one token at a time from the end of the currently longer sentence
(the second on a tie), so both sentences always keep their beginnings and at least one token.

Classifier. The backbone is causal, so a position only sees the tokens before it; right padding
therefore never changes the hidden states of real tokens and needs no attention mask. The pooled
vector is the mean of the final hidden states over real tokens (``pooling: mean``, the default:
it won on the held-out split for all four realdata-mini twins, benchmarks/finetune/README.md) or
the final hidden state of the last real token (``pooling: last``, the closing ``[SEP]``, which
has attended to the whole input); dropout then a linear layer gives two logits. The whole
backbone is fine-tuned; in the ternary twin every ``BitLinear`` stays (quantization-aware
training continues, weights remain ternary in the forward pass). The unused LM head is frozen.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ternarylm.glue import Example
from ternarylm.io import UserError
from ternarylm.trainkit import autocast_context, to_device

# --- metrics (percent) ---------------------------------------------------------------------


def _counts(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[int, int, int, int]:
    if len(y_true) != len(y_pred) or not y_true:
        raise ValueError("need two equally long, non-empty label lists")
    tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == 1 and p == 1)
    tn = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == 0 and p == 0)
    fp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == 0 and p == 1)
    fn = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == 1 and p == 0)
    return tp, tn, fp, fn


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    tp, tn, fp, fn = _counts(y_true, y_pred)
    return 100.0 * (tp + tn) / (tp + tn + fp + fn)


def f1_score(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """F1 of the positive class (label 1), as GLUE reports it for MRPC; 0 when undefined."""
    tp, _, fp, fn = _counts(y_true, y_pred)
    return 100.0 * 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def mcc(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Matthews correlation x 100; 0 when a marginal is empty (e.g. a constant predictor)."""
    tp, tn, fp, fn = _counts(y_true, y_pred)
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 100.0 * (tp * tn - fp * fn) / denom if denom else 0.0


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    acc, f1 = accuracy(y_true, y_pred), f1_score(y_true, y_pred)
    return {"accuracy": acc, "f1": f1, "f1_acc": (f1 + acc) / 2, "mcc": mcc(y_true, y_pred), "n": len(y_true)}


def majority_label(labels: Sequence[int]) -> int:
    """Most frequent label (ties: the smaller label)."""
    counts = Counter(labels)
    return min(counts, key=lambda y: (-counts[y], y))


# --- input encoding ------------------------------------------------------------------------


def special_ids(tok: Any) -> dict[str, int]:
    ids = {name: tok.token_to_id(f"[{name.upper()}]") for name in ("cls", "sep", "pad")}
    missing = [f"[{k.upper()}]" for k, v in ids.items() if v is None]
    if missing:
        raise UserError(f"tokenizer lacks special tokens {missing}")
    return ids


def truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Shorten ``a`` and ``b`` to ``len(a) + len(b) <= budget``, trimming the longer one first."""
    if budget < 2:
        raise ValueError("a pair needs room for at least one token of each sentence")
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()
    return a, b


def encode_ids(a: list[int], b: list[int] | None, max_len: int, cls: int, sep: int) -> list[int]:
    """``[CLS] a [SEP] b [SEP]`` (or ``[CLS] a [SEP]``) within ``max_len`` tokens."""
    if b is None:
        return [cls, *a[: max_len - 2], sep]
    a, b = truncate_pair(a, b, max_len - 3)
    return [cls, *a, sep, *b, sep]


def encode_examples(tok: Any, examples: Sequence[Example], max_len: int) -> list[list[int]]:
    sp = special_ids(tok)
    a_ids = [e.ids for e in tok.encode_batch([x.text_a for x in examples], add_special_tokens=False)]
    if examples and examples[0].text_b is not None:
        b_ids = [e.ids for e in tok.encode_batch([x.text_b for x in examples], add_special_tokens=False)]
    else:
        b_ids = [None] * len(examples)
    return [encode_ids(a, b, max_len, sp["cls"], sp["sep"]) for a, b in zip(a_ids, b_ids, strict=True)]


def bucket_length(n: int, max_len: int, smallest: int = 32) -> int:
    """The smallest of 32, 64, 128, ... (capped at ``max_len``) that holds ``n`` tokens."""
    length = smallest
    while length < n:
        length *= 2
    return min(length, max(max_len, n))


def pad_batch(
    seqs: Sequence[list[int]], pad: int, bucket_max: int | None = None, rows: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) ids and the (B,) lengths. For a compiled model (``bucket_max`` set) T is
    a bucket length and ``rows`` pads B with one-token dummy rows the caller drops from the logits.

    A model compiled for fixed shapes compiles once per (B, T): with buckets it sees a handful of
    shapes in the first epoch and none after. Padding never changes real rows (causal model,
    per-token activation scales, masked pooling), only the cost, so eager runs keep exact lengths.
    """
    lengths = [len(s) for s in seqs] + [1] * max(0, (rows or 0) - len(seqs))
    T = max(lengths) if bucket_max is None else bucket_length(max(lengths), bucket_max)
    idx = torch.full((len(lengths), T), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        idx[i, : len(s)] = torch.tensor(s)
    return idx, torch.tensor(lengths)


# --- model ---------------------------------------------------------------------------------


class SequenceClassifier(nn.Module):
    """A pretrained TransformerLM with a pooled linear classification head."""

    def __init__(self, backbone: nn.Module, pooling: str = "last", dropout: float = 0.1, n_classes: int = 2):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(backbone.cfg.d_model, n_classes)
        nn.init.normal_(self.classifier.weight, std=backbone.cfg.init_std)
        nn.init.zeros_(self.classifier.bias)
        backbone.head.weight.requires_grad_(False)  # the LM head is not used

    def pool(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.pooling == "last":
            return h[torch.arange(h.shape[0], device=h.device), lengths - 1]
        mask = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)
        return (h * mask[..., None]).sum(1) / lengths[:, None].to(h.dtype)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(self.backbone.hidden(idx), lengths)
        return self.classifier(self.drop(pooled.float()))


def split_heldout(n: int, frac: float, seed: int) -> tuple[list[int], list[int]]:
    """(fit indices, held-out indices) of a fixed random split of ``range(n)``."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = max(1, round(n * frac))
    return sorted(order[k:]), sorted(order[:k])


def _batches(n: int, batch_size: int, order: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, n, batch_size):
        yield list(order[i : i + batch_size])


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, gen: torch.Generator, pool: int = 50
) -> list[list[int]]:
    """Random batches of similar length: shuffle, sort each pool of ``pool`` batches by length,
    cut it into batches, shuffle the batches. Less padding (~30 % fewer tokens on MRPC), same data."""
    order = torch.randperm(len(lengths), generator=gen).tolist()
    batches = []
    for start in range(0, len(order), pool * batch_size):
        chunk = sorted(order[start : start + pool * batch_size], key=lambda i: lengths[i])
        batches.extend(_batches(len(chunk), batch_size, chunk))
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


@torch.no_grad()
def evaluate(
    model: SequenceClassifier,
    seqs: Sequence[list[int]],
    labels: Sequence[int],
    batch_size: int,
    pad: int,
    device: torch.device,
    precision: str,
    bucket_max: int | None = None,
) -> tuple[dict[str, float], list[int]]:
    """Metrics (+ mean CE ``loss``) and predictions; batches are length-sorted to limit padding."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    preds = [0] * len(seqs)
    loss_sum = 0.0
    for ids in _batches(len(seqs), batch_size, order):
        rows = batch_size if bucket_max else None
        idx, lengths = pad_batch([seqs[i] for i in ids], pad, bucket_max, rows)
        idx, lengths, y = to_device(device, idx, lengths, torch.tensor([labels[i] for i in ids]))
        with autocast_context(device, precision):
            logits = model(idx, lengths)[: len(ids)]
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        for i, p in zip(ids, logits.argmax(-1).tolist(), strict=True):
            preds[i] = p
    model.train(was_training)
    metrics = classification_metrics(labels, preds)
    metrics["loss"] = loss_sum / len(seqs)
    return metrics, preds
