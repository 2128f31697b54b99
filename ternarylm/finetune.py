"""Fine-tune a pretrained twin on MRPC, SST-2 or CoLA (paper Table T4, seed README extras T5).

``ternarylm finetune --config C --task mrpc --model DIR --tokenizer T --out DIR`` writes
``DIR/curve.csv`` (one row per epoch) and then ``DIR/metrics.json``, both atomically.

Input format. A sentence pair is ``[CLS] s1 [SEP] s2 [SEP]``, a single sentence ``[CLS] s [SEP]``,
right-padded with ``[PAD]``. The length limit is ``min(finetune.max_len, model seq_len)``; a pair
that does not fit is shortened one token at a time from the end of the currently longer sentence
(the second on a tie), so both sentences always keep their beginnings and at least one token.

Classifier. The backbone is causal, so a position only sees the tokens before it; right padding
therefore never changes the hidden states of real tokens and needs no attention mask. The pooled
vector is the mean of the final hidden states over real tokens (``pooling: mean``, the default:
it won on the held-out split for all four realdata-mini twins, benchmarks/finetune/README.md) or
the final hidden state of the last real token (``pooling: last``, the closing ``[SEP]``, which
has attended to the whole input); dropout then a linear layer gives two logits. The whole backbone is fine-tuned; in the ternary
twin every ``BitLinear`` stays (quantization-aware training continues, weights remain ternary in
the forward pass). The unused LM head is frozen.

Objective: cross-entropy, plain (``loss: ce``) or class-balanced (``loss: balanced``, weights
``n / (2 * n_class)`` from the training part). AdamW, linear warm-up over ``warmup_frac`` of the
steps then linear decay to zero, a fixed number of epochs; batches are random but of similar
length (:func:`bucketed_batches`).

Model selection: 10 % of the *train* split (``heldout_frac``, fixed by ``split_seed`` so every
twin and seed shares it) is held out; after every epoch the held-out ``selection_metric`` is
measured and the best epoch's weights are the ones reported. ``auto`` is GLUE's task score:
MRPC mean(F1, accuracy) (F1 alone would prefer a constant "paraphrase" predictor), SST-2
accuracy, CoLA MCC; ties go to the lower held-out loss, then the earlier epoch; ``loss`` picks
the lowest held-out CE. Dev and test are never used for selection; dev metrics per epoch are only
recorded in ``curve.csv``. Metrics are percentages (MCC x 100, as GLUE reports it). The
majority-class baseline predicts the most frequent label of the training part on the same
dev/test examples.

bf16 autocast on CUDA (``precision``), fp32 on CPU; with a fixed seed and thread count a CPU run
is deterministic. With ``--ckpt DIR`` the state after every epoch is saved there and a rerun
resumes from it with the same result as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ternarylm.glue import (
    PAIR_TASKS,
    PRIMARY_METRIC,
    SELECTION_METRIC,
    TASKS,
    Example,
    check_task,
    has_split,
    load_split,
)
from ternarylm.io import UserError, atomic_path, read_json, write_csv, write_json

log = logging.getLogger("ternarylm.finetune")

# finetune: keys beyond config.yaml's {tasks, epochs, batch_size, lr, max_len}, read with these defaults
DEFAULTS: dict[str, Any] = {
    "epochs": 3,
    "batch_size": 32,
    "lr": 5.0e-5,
    "max_len": 128,
    "pooling": "mean",  # mean | last (mean won on held-out MRPC with the realdata-mini twins)
    "loss": "ce",  # ce | balanced
    "weight_decay": 0.01,
    "warmup_frac": 0.1,
    "grad_clip": 1.0,
    "head_dropout": 0.1,
    "selection_metric": "auto",  # auto (GLUE task score) | f1_acc | f1 | accuracy | mcc | loss
    "heldout_frac": 0.1,
    "split_seed": 0,
    "max_train_examples": None,  # cap on train examples (before the held-out split); null = all
    "eval_batch_size": None,  # null = 2 x batch_size
    "precision": None,  # null = train.precision (auto: bf16 autocast on CUDA)
    "device": None,  # null = train.device
    "threads": None,  # null = train.threads
    "keep_checkpoint": False,
}
CURVE_FIELDS = [
    "epoch",
    "step",
    "lr",
    "train_loss",
    "heldout_loss",
    "heldout_accuracy",
    "heldout_f1",
    "heldout_mcc",
    "heldout_f1_acc",
    "dev_loss",
    "dev_accuracy",
    "dev_f1",
    "dev_mcc",
    "dev_f1_acc",
    "seconds",
]


def settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ``finetune`` section over :data:`DEFAULTS`, with train-section fallbacks resolved."""
    ft = {**DEFAULTS, **(config.get("finetune") or {})}
    train = config.get("train") or {}
    for key, fallback in (("precision", "auto"), ("device", "auto"), ("threads", None)):
        if ft[key] is None:
            ft[key] = train.get(key, fallback)
    if ft["eval_batch_size"] is None:
        ft["eval_batch_size"] = 2 * _number(ft, "batch_size", int)
    for key, kind in NUMERIC_KEYS.items():
        if ft[key] is not None:
            ft[key] = _number(ft, key, kind)
    if isinstance(ft["keep_checkpoint"], str):
        ft["keep_checkpoint"] = ft["keep_checkpoint"].strip().lower() in ("1", "true", "yes")
    if min(ft["epochs"], ft["batch_size"], ft["max_len"], ft["eval_batch_size"]) < 1 or ft["lr"] <= 0:
        raise UserError("finetune.epochs, batch_size, max_len and lr must be positive")
    if ft["pooling"] not in ("last", "mean"):
        raise UserError(f"finetune.pooling must be 'last' or 'mean', got {ft['pooling']!r}")
    if ft["loss"] not in ("ce", "balanced"):
        raise UserError(f"finetune.loss must be 'ce' or 'balanced', got {ft['loss']!r}")
    if ft["selection_metric"] not in ("auto", "f1_acc", "f1", "accuracy", "mcc", "loss"):
        raise UserError(
            f"finetune.selection_metric must be auto, f1_acc, f1, accuracy, mcc or loss, got {ft['selection_metric']!r}"
        )
    if not 0 < ft["heldout_frac"] < 1:
        raise UserError(f"finetune.heldout_frac must be in (0, 1), got {ft['heldout_frac']}")
    return ft


# numeric settings and their types (values given on the command line, e.g. ``snakemake --config``,
# may arrive as strings)
NUMERIC_KEYS: dict[str, type] = {
    "epochs": int,
    "batch_size": int,
    "max_len": int,
    "eval_batch_size": int,
    "split_seed": int,
    "max_train_examples": int,
    "threads": int,
    "lr": float,
    "weight_decay": float,
    "warmup_frac": float,
    "grad_clip": float,
    "head_dropout": float,
    "heldout_frac": float,
}


def _number(ft: dict[str, Any], key: str, kind: type) -> int | float:
    value = ft[key]
    try:
        number = kind(float(value)) if kind is int else float(value)
    except (TypeError, ValueError):
        raise UserError(f"finetune.{key} must be a number, got {value!r}") from None
    if kind is int and number != float(value):
        raise UserError(f"finetune.{key} must be a whole number, got {value!r}")
    return number


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


def pad_batch(seqs: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) ids and the (B,) lengths."""
    lengths = torch.tensor([len(s) for s in seqs])
    idx = torch.full((len(seqs), int(lengths.max())), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        idx[i, : len(s)] = torch.tensor(s)
    return idx, lengths


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


# --- training ------------------------------------------------------------------------------


def split_heldout(n: int, frac: float, seed: int) -> tuple[list[int], list[int]]:
    """(fit indices, held-out indices) of a fixed random split of ``range(n)``."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = max(1, round(n * frac))
    return sorted(order[k:]), sorted(order[:k])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("finetune device 'cuda' requested but CUDA is not available")
    return torch.device(name)


def _autocast(device: torch.device, precision: str):
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


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
) -> tuple[dict[str, float], list[int]]:
    """Metrics (+ mean CE ``loss``) and predictions; batches are length-sorted to limit padding."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    preds = [0] * len(seqs)
    loss_sum = 0.0
    for ids in _batches(len(seqs), batch_size, order):
        idx, lengths = pad_batch([seqs[i] for i in ids], pad)
        y = torch.tensor([labels[i] for i in ids], device=device)
        with _autocast(device, precision):
            logits = model(idx.to(device), lengths.to(device))
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        for i, p in zip(ids, logits.argmax(-1).tolist(), strict=True):
            preds[i] = p
    model.train(was_training)
    metrics = classification_metrics(labels, preds)
    metrics["loss"] = loss_sum / len(seqs)
    return metrics, preds


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train_classifier(
    model: SequenceClassifier,
    task: str,
    data: dict[str, tuple[list[list[int]], list[int]]],
    ft: dict[str, Any],
    seed: int,
    pad: int,
    device: torch.device,
    ckpt_dir: str | Path | None = None,
    stop_after_epoch: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fine-tune ``model`` on ``data['train']``; select on ``data['heldout']``; record ``data['dev']``.

    Returns (curve rows, selection info) and leaves ``model`` holding the selected epoch's weights.
    ``stop_after_epoch`` ends early after that epoch (used by tests to simulate an interruption).
    """
    primary = PRIMARY_METRIC[task]
    select = SELECTION_METRIC[task] if ft["selection_metric"] == "auto" else ft["selection_metric"]
    train_x, train_y = data["train"]
    n, bs, epochs = len(train_x), ft["batch_size"], ft["epochs"]
    steps_per_epoch = math.ceil(n / bs)
    total = steps_per_epoch * epochs
    warmup = int(ft["warmup_frac"] * total)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    params = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for _, p in params if p.ndim >= 2], "weight_decay": ft["weight_decay"]},
        {"params": [p for _, p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=ft["lr"], betas=(0.9, 0.999), fused=device.type == "cuda")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    weight = None
    if ft["loss"] == "balanced":
        counts = Counter(train_y)
        weight = torch.tensor(
            [n / (2 * max(1, counts[c])) for c in (0, 1)], dtype=torch.float32, device=device
        )

    curve: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": 0, "key": None, "state": None}
    start_epoch = 1
    ckpt = Path(ckpt_dir) / "finetune_state.pt" if ckpt_dir else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], device)
        curve, best, start_epoch = state["curve"], state["best"], state["epoch"] + 1
        log.info("resumed from %s after epoch %d", ckpt, state["epoch"])

    model.train()
    step = (start_epoch - 1) * steps_per_epoch
    for epoch in range(start_epoch, epochs + 1):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)  # stateless: resumable per epoch
        loss_sum, seen = 0.0, 0
        lr_now = sched.get_last_lr()[0]
        for ids in bucketed_batches([len(x) for x in train_x], bs, gen):
            idx, lengths = pad_batch([train_x[i] for i in ids], pad)
            y = torch.tensor([train_y[i] for i in ids], device=device)
            with _autocast(device, ft["precision"]):
                logits = model(idx.to(device), lengths.to(device))
            loss = F.cross_entropy(logits.float(), y, weight=weight)
            if not torch.isfinite(loss):
                raise UserError(
                    f"non-finite fine-tuning loss at epoch {epoch}, step {step} (lower finetune.lr?)"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if ft["grad_clip"]:
                torch.nn.utils.clip_grad_norm_([p for _, p in params], ft["grad_clip"])
            opt.step()
            lr_now = sched.get_last_lr()[0]
            sched.step()
            step += 1
            loss_sum += loss.item() * len(ids)
            seen += len(ids)
        row: dict[str, Any] = {"epoch": epoch, "step": step, "lr": lr_now, "train_loss": loss_sum / seen}
        for split in ("heldout", "dev"):
            m, _ = evaluate(model, *data[split], ft["eval_batch_size"], pad, device, ft["precision"])
            row.update({f"{split}_{k}": m[k] for k in ("loss", "accuracy", "f1", "mcc", "f1_acc")})
        row["seconds"] = time.perf_counter() - t0
        curve.append(row)
        key = (
            (-row["heldout_loss"],) if select == "loss" else (row[f"heldout_{select}"], -row["heldout_loss"])
        )
        if best["key"] is None or key > tuple(best["key"]):
            best = {"epoch": epoch, "key": list(key), "state": _cpu_state(model)}
        log.info(
            "epoch %d/%d train_loss %.4f heldout %s %.2f (loss %.4f) | dev %s %.2f  [%.1fs]",
            epoch,
            epochs,
            row["train_loss"],
            primary,
            row[f"heldout_{primary}"],
            row["heldout_loss"],
            primary,
            row[f"dev_{primary}"],
            row["seconds"],
        )
        if ckpt is not None:
            state = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": _rng_state(device),
                "curve": curve,
                "best": best,
                "epoch": epoch,
            }
            with atomic_path(ckpt) as tmp:
                torch.save(state, tmp)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break

    model.load_state_dict(best["state"])
    selection = {
        "epoch": best["epoch"],
        "split": "heldout",
        "metric": select,
        "value": -best["key"][0] if select == "loss" else best["key"][0],
        "heldout_loss": -best["key"][-1],
    }
    return curve, selection


# --- the stage -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument(
        "--model", required=True, help="pretrained twin folder (model.safetensors, config.json)"
    )
    parser.add_argument("--tokenizer", required=True, help="tokenizer.json")
    parser.add_argument("--out", required=True, help="output folder for metrics.json and curve.csv")
    parser.add_argument("--seed", type=int, default=None, help="fine-tuning seed (default: the backbone's)")
    parser.add_argument("--ckpt", default=None, help="folder for per-epoch resumable state (optional)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: finetune.threads)")


def _label_summary(labels: Sequence[int]) -> dict[str, Any]:
    return {"n": len(labels), "positive_frac": sum(labels) / len(labels)}


def finetune(
    task: str,
    model_dir: str | Path,
    tokenizer_path: str | Path,
    config: dict[str, Any],
    seed: int | None = None,
    ckpt_dir: str | Path | None = None,
    stop_after_epoch: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the whole stage in memory: returns (metrics, curve rows)."""
    from ternarylm.model import load_model
    from ternarylm.tokenizer import load_tokenizer

    check_task(task)
    ft = settings(config)
    device = resolve_device(ft["device"])
    if ft["threads"]:
        torch.set_num_threads(int(ft["threads"]))
    model_dir = Path(model_dir)
    backbone_meta = read_json(model_dir / "config.json")
    if seed is None:
        seed = int(backbone_meta.get("seed", 0))
    tok = load_tokenizer(str(tokenizer_path))
    tok.no_truncation()
    tok.no_padding()
    pad = special_ids(tok)["pad"]

    # data: train -> fit part + held-out part (selection); dev and test only measured
    train = load_split(task, "train", config)
    if ft["max_train_examples"] and len(train) > ft["max_train_examples"]:
        keep = sorted(random.Random(ft["split_seed"]).sample(range(len(train)), ft["max_train_examples"]))
        train = [train[i] for i in keep]
    fit_idx, held_idx = split_heldout(len(train), ft["heldout_frac"], ft["split_seed"])
    examples = {
        "train": [train[i] for i in fit_idx],
        "heldout": [train[i] for i in held_idx],
        "dev": load_split(task, "dev", config),
    }
    test_note = None
    if has_split(task, "test"):
        try:
            examples["test"] = load_split(task, "test", config)
        except UserError as e:
            if config.get("data_source") != "hf":
                raise
            test_note = f"labeled test split unavailable: {e}"
            log.warning(test_note)

    torch.manual_seed(seed)
    backbone = load_model(model_dir, device)
    max_len = min(int(ft["max_len"]), backbone.cfg.seq_len)
    if task in PAIR_TASKS and max_len < 5:
        raise UserError(f"finetune.max_len {max_len} leaves no room for a sentence pair")
    data = {k: (encode_examples(tok, v, max_len), [e.label for e in v]) for k, v in examples.items()}
    model = SequenceClassifier(backbone, ft["pooling"], ft["head_dropout"]).to(device)
    n_bitlinear = sum(1 for m in backbone.modules() if type(m).__name__ == "BitLinear")
    log.info(
        "finetune %s: backbone %s (%s, %d BitLinear), seed %d, device %s, train %d / heldout %d / dev %d%s",
        task,
        model_dir,
        backbone.cfg.linear,
        n_bitlinear,
        seed,
        device,
        len(data["train"][0]),
        len(data["heldout"][0]),
        len(data["dev"][0]),
        f" / test {len(data['test'][0])}" if "test" in data else "",
    )

    t0 = time.perf_counter()
    curve, selection = train_classifier(model, task, data, ft, seed, pad, device, ckpt_dir, stop_after_epoch)
    train_seconds = time.perf_counter() - t0

    majority = majority_label(data["train"][1])
    metrics: dict[str, Any] = {
        "task": task,
        "variant": backbone_meta.get("variant", backbone.cfg.linear),
        "seed": seed,
        "backbone": str(model_dir),
        "backbone_linear": backbone.cfg.linear,
        "n_bitlinear": n_bitlinear,
        "tokenizer": str(tokenizer_path),
        "data_source": config.get("data_source", "hf"),
        "primary_metric": PRIMARY_METRIC[task],
        "units": "percent (accuracy, F1 of label 1, MCC x 100)",
        "selected_epoch": selection["epoch"],
        "selection": selection,
        "splits": {
            "train": {"from": "train minus held-out", **_label_summary(data["train"][1])},
            "heldout": {
                "from": f"{ft['heldout_frac']:.0%} of train (split_seed {ft['split_seed']})",
                **_label_summary(data["heldout"][1]),
            },
            "dev": {
                "from": "GLUE validation" if config.get("data_source") != "synthetic" else "synthetic dev",
                **_label_summary(data["dev"][1]),
            },
        },
        "dev": None,
        "test": None,
        "majority": {"label": majority, "from": "most frequent label of the train part"},
    }
    for split in ("heldout", "dev", "test"):
        if split not in data:
            continue
        m, _ = evaluate(model, *data[split], ft["eval_batch_size"], pad, device, ft["precision"])
        metrics[split] = {"split": split, **m}
        labels = data[split][1]
        metrics["majority"][split] = {
            "split": split,
            **classification_metrics(labels, [majority] * len(labels)),
        }
    if "test" in data:
        source = (
            "MSR labeled test (test_labeled.txt)"
            if config.get("data_source") != "synthetic"
            else "synthetic test"
        )
        metrics["splits"]["test"] = {"from": source, **_label_summary(data["test"][1])}
    else:
        metrics["splits"]["test"] = {"from": test_note or f"{task} has no labeled test split", "n": 0}
    metrics["max_len"] = max_len
    metrics["settings"] = {k: ft[k] for k in DEFAULTS if k != "keep_checkpoint"}
    metrics["device"] = str(device)
    metrics["train_seconds"] = round(train_seconds, 2)
    metrics["torch"] = torch.__version__
    return metrics, curve


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    out = Path(args.out)
    if args.threads:
        config = {**config, "finetune": {**(config.get("finetune") or {}), "threads": args.threads}}
    metrics, curve = finetune(args.task, args.model, args.tokenizer, config, args.seed, args.ckpt)
    write_csv(out / "curve.csv", curve, CURVE_FIELDS)
    write_json(out / "metrics.json", metrics)
    if args.ckpt and not settings(config)["keep_checkpoint"]:
        state = Path(args.ckpt) / "finetune_state.pt"
        if state.exists():
            state.unlink()
    primary = metrics["primary_metric"]
    log.info(
        "%s %s seed %d: dev %s %.2f (majority %.2f), selected epoch %d -> %s",
        metrics["task"],
        metrics["variant"],
        metrics["seed"],
        primary,
        metrics["dev"][primary],
        metrics["majority"]["dev"][primary],
        metrics["selected_epoch"],
        out / "metrics.json",
    )
