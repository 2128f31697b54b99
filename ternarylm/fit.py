"""The fine-tuning loop: one classifier trained for a fixed number of epochs, the best held-out epoch
kept, resumable from a per-epoch checkpoint (split from finetune.py, which loads the data and the
backbone and writes the metrics; the objective, schedule and selection rule are described there).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ternarylm import identity
from ternarylm import trainkit as tk
from ternarylm.checkpoint import Checkpoint, is_finite, restore_rng, rng_state
from ternarylm.classifier import (
    SequenceClassifier,
    bucketed_batches,
    evaluate,
    pad_batch,
)
from ternarylm.config import resolve
from ternarylm.glue import (
    PRIMARY_METRIC,
    SELECTION_METRIC,
)
from ternarylm.io import UserError

log = logging.getLogger("ternarylm.finetune")


STATE_NAME = "finetune_state.pt"  # in --ckpt DIR

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
    """The ``finetune`` section over config.yaml's, with train-section fallbacks resolved.

    Types and ranges are the config schema's job (checked before any stage runs); only what a
    schema cannot say is resolved here: fallbacks to the train section and to ``batch_size``.
    """
    config = resolve(config)
    ft, train = config["finetune"], config["train"]
    for key in ("precision", "device", "threads"):
        if ft[key] is None:
            ft[key] = train[key]
    if ft["eval_batch_size"] is None:
        ft["eval_batch_size"] = 2 * ft["batch_size"]
    return ft


# --- training ------------------------------------------------------------------------------


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class FitJob:
    """What :func:`train_classifier` reads besides the model."""

    task: str
    data: dict[str, tuple[list[list[int]], list[int]]]  # split -> (token ids, labels)
    ft: dict[str, Any]
    seed: int
    pad: int
    device: torch.device
    ckpt: Checkpoint | None = None  # per-epoch resumable state (locked by the caller)
    fingerprint: str = ""  # what the checkpoint must match to be resumed
    desc: str = "finetune"  # progress lines
    compiled: nn.Module | None = None  # torch.compile'd model to call (state dicts: the plain one)
    bucket_max: int | None = None  # pad batches to bucket lengths up to this (set when compiled)

    def forward(self, model: nn.Module) -> nn.Module:
        return model if self.compiled is None else self.compiled  # (a compiled module has no bool)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        ft = self.ft
        fwd = self.forward(model)
        args = (ft["eval_batch_size"], self.pad, self.device, ft["precision"], self.bucket_max)
        return evaluate(fwd, *self.data[split], *args)[0]


@dataclass
class Fit:
    """The mutable fine-tuning state; a checkpoint holds all of it."""

    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    steps_per_epoch: int
    weight: torch.Tensor | None = None  # class weights for loss: balanced
    curve: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": 0, "key": None, "state": None})
    epoch: int = 0  # epochs done


def _setup(model: SequenceClassifier, job: FitJob) -> Fit:
    ft, (train_x, train_y) = job.ft, job.data["train"]
    n = len(train_x)
    steps_per_epoch = math.ceil(n / ft["batch_size"])
    total = steps_per_epoch * ft["epochs"]
    warmup = int(ft["warmup_frac"] * total)

    def lr_factor(step: int) -> float:  # linear warm-up, then linear decay to zero
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    opt = tk.make_optimizer(model, ft, job.device)
    fit = Fit(opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_factor), steps_per_epoch)
    if ft["loss"] == "balanced":
        counts = Counter(train_y)
        fit.weight = torch.tensor(
            [n / (2 * max(1, counts[c])) for c in (0, 1)], dtype=torch.float32, device=job.device
        )
    return fit


def _resume(model: SequenceClassifier, fit: Fit, job: FitJob) -> None:
    state = job.ckpt.load() if job.ckpt is not None else None
    if state is None:
        return
    # another backbone, tokenizer, task, seed, setting or example: its schedule and weights are not ours
    if not identity.may_resume(state.get("fingerprint"), job.fingerprint, job.ckpt.path, "the task files"):
        return
    model.load_state_dict(state["model"])
    fit.opt.load_state_dict(state["optimizer"])
    fit.sched.load_state_dict(state["scheduler"])
    restore_rng(state["rng"], job.device)
    fit.curve, fit.best, fit.epoch = state["curve"], state["best"], state["epoch"]
    log.info("resumed from %s after epoch %d", job.ckpt.path, fit.epoch)


def _save(model: SequenceClassifier, fit: Fit, job: FitJob) -> None:
    state = {
        "fingerprint": job.fingerprint,
        "model": model.state_dict(),
        "optimizer": fit.opt.state_dict(),
        "scheduler": fit.sched.state_dict(),
        "rng": rng_state(job.device),
        "curve": fit.curve,
        "best": fit.best,
        "epoch": fit.epoch,
    }
    job.ckpt.save(state, is_finite(state["model"]), f"fine-tuning state after epoch {fit.epoch}")


def _train_epoch(
    model: SequenceClassifier, fit: Fit, job: FitJob, progress: tk.Progress
) -> tuple[float, float]:
    """One pass over the training part; returns (mean training loss, last learning rate)."""
    ft, (train_x, train_y), device = job.ft, job.data["train"], job.device
    epoch = fit.epoch + 1
    gen = torch.Generator().manual_seed(job.seed * 100_003 + epoch)  # stateless: resumable per epoch
    # summed on the device in float64 (as a Python float would be): no host sync per step
    loss_sum, seen = torch.zeros((), dtype=torch.float64, device=device), 0
    lr_now = fit.sched.get_last_lr()[0]
    tick, seen_at_tick = tk.Timer(tk.PROGRESS_SECONDS), 0
    step = fit.epoch * fit.steps_per_epoch
    fwd = job.forward(model)
    for ids in bucketed_batches([len(x) for x in train_x], ft["batch_size"], gen):
        rows = ft["batch_size"] if job.bucket_max else None
        idx, lengths = pad_batch([train_x[i] for i in ids], job.pad, job.bucket_max, rows)
        y = torch.tensor([train_y[i] for i in ids])
        idx, lengths, y = tk.to_device(device, idx, lengths, y)
        with tk.autocast_context(device, ft["precision"]):
            logits = fwd(idx, lengths)[: len(ids)]
        loss = F.cross_entropy(logits.float(), y, weight=fit.weight)
        fit.opt.zero_grad(set_to_none=True)
        loss.backward()
        if ft["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], ft["grad_clip"]
            )
        fit.opt.step()
        lr_now = fit.sched.get_last_lr()[0]
        fit.sched.step()
        step += 1
        loss_sum += loss.detach().double() * len(ids)
        seen += len(ids)
        if tick.due():  # one host sync about every PROGRESS_SECONDS
            rate = (seen - seen_at_tick) / max(time.monotonic() - tick.last, 1e-9)
            progress.log(step, (loss_sum / seen).item(), rate)
            tick.reset()
            seen_at_tick = seen
    train_loss = (loss_sum / seen).item()
    if not math.isfinite(train_loss):
        raise UserError(f"non-finite fine-tuning loss in epoch {epoch} (lower finetune.lr?)")
    return train_loss, lr_now


def _epoch_row(
    model: SequenceClassifier, fit: Fit, job: FitJob, train_loss: float, lr: float
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "epoch": fit.epoch,
        "step": fit.epoch * fit.steps_per_epoch,
        "lr": lr,
        "train_loss": train_loss,
    }
    for split in ("heldout", "dev"):
        m = job.evaluate(model, split)
        row.update({f"{split}_{k}": m[k] for k in ("loss", "accuracy", "f1", "mcc", "f1_acc")})
    return row


def _selection_metric(job: FitJob) -> str:
    return SELECTION_METRIC[job.task] if job.ft["selection_metric"] == "auto" else job.ft["selection_metric"]


def _keep_best(model: SequenceClassifier, fit: Fit, row: dict[str, Any], select: str) -> None:
    # higher is better; ties go to the lower held-out loss, then to the earlier epoch (strict >)
    key = (-row["heldout_loss"],) if select == "loss" else (row[f"heldout_{select}"], -row["heldout_loss"])
    if fit.best["key"] is None or key > tuple(fit.best["key"]):
        fit.best = {"epoch": row["epoch"], "key": list(key), "state": _cpu_state(model)}


def train_classifier(
    model: SequenceClassifier, job: FitJob, stop_after_epoch: int | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fine-tune ``model`` on ``data['train']``; select on ``data['heldout']``; record ``data['dev']``.

    Returns (curve rows, selection info) and leaves ``model`` holding the selected epoch's weights.
    ``stop_after_epoch`` ends early after that epoch (used by tests to simulate an interruption).
    """
    primary, select, epochs = PRIMARY_METRIC[job.task], _selection_metric(job), job.ft["epochs"]
    fit = _setup(model, job)
    _resume(model, fit, job)
    progress = tk.Progress(job.desc, fit.steps_per_epoch * epochs, fit.epoch * fit.steps_per_epoch, "ex", log)
    model.train()
    while fit.epoch < epochs and (stop_after_epoch is None or fit.epoch < stop_after_epoch):
        t0 = time.perf_counter()
        train_loss, lr = _train_epoch(model, fit, job, progress)
        fit.epoch += 1
        row = _epoch_row(model, fit, job, train_loss, lr)
        row["seconds"] = time.perf_counter() - t0
        fit.curve.append(row)
        _keep_best(model, fit, row, select)
        progress.log(row["step"], train_loss)
        log.info(
            "epoch %d/%d train_loss %.4f heldout %s %.2f (loss %.4f) | dev %s %.2f  [%.1fs]",
            fit.epoch, epochs, train_loss, primary, row[f"heldout_{primary}"], row["heldout_loss"],
            primary, row[f"dev_{primary}"], row["seconds"],
        )  # fmt: skip
        if job.ckpt is not None:
            _save(model, fit, job)
    model.load_state_dict(fit.best["state"])
    key = fit.best["key"]
    selection = {
        "epoch": fit.best["epoch"],
        "split": "heldout",
        "metric": select,
        "value": -key[0] if select == "loss" else key[0],
        "heldout_loss": -key[-1],
    }
    return fit.curve, selection


# --- the stage -----------------------------------------------------------------------------
