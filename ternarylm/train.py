"""`ternarylm pretrain`: train one twin (ternary or fp32) on a tokenized corpus, resumably.

``--variant`` is a key of ``model.VARIANTS``: the twins, or the ``fp32-noncausal`` control (the
FP32 twin without the causal mask, trained and evaluated like the twins, from the same initial
weights for the same seed).

Fast path (the default on CUDA): bf16 autocast, SDPA attention, fused AdamW, ``torch.compile``,
pinned-memory batches from the uint16 memmap and no host syncs inside a step (the loss is read
every ``log_every`` steps). On CPU it runs eager fp32 and is deterministic for a seed.

Resumability: every ``ckpt_minutes`` of wall-clock time, every ``ckpt_every`` steps if set, and on
SIGTERM/SIGUSR1 (e.g. SLURM preemption) the model, optimizer, scheduler, RNG states, step and
metrics so far are saved atomically, with a checksum, to ``--ckpt-dir`` (see checkpoint.py);
rerunning the same command resumes there and gives bitwise the same result as an uninterrupted
run on CPU. The checkpoint lives outside the rule's outputs, which Snakemake
deletes when a job fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ternarylm import identity, trajectory
from ternarylm.checkpoint import Checkpoint, is_finite, restore_rng, rng_state
from ternarylm.config import resolve
from ternarylm.encode import load_tokens
from ternarylm.io import UserError, write_csv
from ternarylm.layout import pretrain_epochs
from ternarylm.model import VARIANTS, ModelConfig, build_model, lm_loss, save_model, variant_config
from ternarylm.trainkit import (
    PROGRESS_SECONDS,
    Progress,
    Timer,
    autocast_context,
    fingerprint,
    make_optimizer,
    setup_device,
    stop_signals,
    threads_for_fingerprint,
)

log = logging.getLogger("ternarylm.train")
# train_eval_*: the first eval_batches of the train split in eval mode, the same measure as val_* (the
# running train_loss is in train mode, with dropout), so their ratio is an overfitting curve
METRIC_FIELDS = ["step", "epoch", "tokens", "train_loss", "val_loss", "val_ce", "lr", "tokens_per_s"]
METRIC_FIELDS += ["train_eval_loss", "train_eval_ce"]


def make_scheduler(opt: torch.optim.Optimizer, tcfg: dict[str, Any], total_steps: int):
    """OneCycle: linear-cosine warm-up over ``warmup_frac`` of the steps, then cosine decay."""
    return torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=tcfg["lr"],
        total_steps=max(total_steps, 2),
        pct_start=tcfg["warmup_frac"],
        anneal_strategy="cos",
        cycle_momentum=False,
        div_factor=25.0,
        final_div_factor=1e4,
    )


def maybe_compile(model: nn.Module, mode: str | bool, device: torch.device) -> nn.Module:
    """Compile the training step's model+loss when asked (``auto`` = on CUDA); returns ``model``.

    What gets compiled is ``model.loss`` (forward and label-smoothed CE in one graph, so the CE over
    the logits is fused instead of running eagerly), kept as ``model.compiled_loss`` for
    :func:`train_step`. The model's own forward stays eager: evaluation (other mode, other batch
    sizes) never triggers a recompile. Only a missing/unsupported ``torch.compile`` falls back
    here; compilation happens at the first step, where an error stops the run — set
    ``train.compile: false`` then.
    """
    want = device.type == "cuda" if mode == "auto" else bool(mode)
    if not want:
        return model
    try:
        model.compiled_loss = torch.compile(model.loss)
    except Exception as e:  # compile unsupported on this platform/python
        log.warning("torch.compile unavailable (%s); training eager", e)
    return model


def train_step(model, x, y, opt, sched, tcfg: dict[str, Any], ctx) -> torch.Tensor:
    """One optimizer step; returns the (detached, on-device) training loss — no host sync."""
    loss_fn = getattr(model, "compiled_loss", None)
    with ctx:
        if loss_fn is not None:
            loss = loss_fn(x, y, tcfg["label_smoothing"])
        else:
            loss = lm_loss(model(x), y, tcfg["label_smoothing"])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if tcfg.get("grad_clip"):
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["grad_clip"])
    opt.step()
    sched.step()
    return loss.detach()


# --- data -------------------------------------------------------------------------------
class TokenWindows:
    """Non-overlapping windows of ``seq_len + 1`` tokens over a token stream; shuffled per epoch."""

    def __init__(self, tokens: np.ndarray, seq_len: int, name: str = "tokens") -> None:
        self.tokens, self.seq_len = tokens, seq_len
        self.n = (len(tokens) - 1) // seq_len
        if self.n < 1:
            raise UserError(f"{name}: {len(tokens)} tokens is less than one sequence of {seq_len + 1}")

    def batch(
        self, idx: torch.Tensor | np.ndarray, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        L = self.seq_len
        arr = np.stack([self.tokens[i * L : i * L + L + 1] for i in np.asarray(idx)]).astype(np.int64)
        t = torch.from_numpy(arr)
        if device.type == "cuda":
            t = t.pin_memory().to(device, non_blocking=True)
        return t[:, :-1], t[:, 1:]

    def order(self, seed: int, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        return torch.randperm(self.n, generator=g)


@torch.no_grad()
def evaluate_loss(
    model, windows: TokenWindows, batch_size: int, n_batches: int | None, ctx, device, label_smoothing: float
):
    """(plain CE, label-smoothed CE) averaged over the first ``n_batches`` batches (None = all).

    Always the eager forward (a compiled module is unwrapped): eval mode and a partial last batch
    would otherwise each compile another graph.
    """
    model = getattr(model, "_orig_mod", model)
    was_training = model.training
    model.eval()
    total = n_batches * batch_size if n_batches else windows.n
    idx = np.arange(min(total, windows.n))
    ce = sm = 0.0
    count = 0
    for s in range(0, len(idx), batch_size):
        x, y = windows.batch(idx[s : s + batch_size], device)
        with ctx:
            logits = model(x)
        n = y.numel()
        ce += lm_loss(logits, y).item() * n
        sm += lm_loss(logits, y, label_smoothing).item() * n if label_smoothing else 0.0
        count += n
    model.train(was_training)
    ce /= count
    return ce, (sm / count if label_smoothing else ce)


# --- the run ----------------------------------------------------------------------------
@dataclass
class PretrainJob:
    """Everything one pretraining run reads; the CLI and the tests build one."""

    train_bin: Path
    val_bin: Path
    out_dir: Path
    ckpt_dir: Path
    model_cfg: dict[str, Any]
    tcfg: dict[str, Any]
    variant: str
    seed: int
    extra: dict[str, Any] | None = None  # recorded in config.json (corpus, tokenizer)


@dataclass
class Plan:
    """What the data and the config fix before the first step."""

    mcfg: ModelConfig
    train_w: TokenWindows
    val_w: TokenWindows
    batch_size: int
    steps_per_epoch: int
    total: int

    def tokens(self, steps: int) -> int:
        return steps * self.batch_size * self.mcfg.seq_len


@dataclass
class Run:
    """The mutable training state: what a checkpoint saves and a resume restores."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    device: torch.device
    step: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    traj: list[dict[str, Any]] = field(default_factory=list)  # trajectory.py rows, step 0 and each eval
    loss_sum: torch.Tensor | None = None  # on device: summed without a host sync per step
    loss_n: int = 0

    def reset_loss(self) -> None:
        self.loss_sum, self.loss_n = torch.zeros((), device=self.device), 0


def plan_steps(job: PretrainJob) -> Plan:
    tcfg = job.tcfg
    vocab = json.loads(Path(job.train_bin).with_suffix(".json").read_text())["vocab_size"]
    mcfg = variant_config(job.model_cfg, job.variant, vocab)
    train_w = TokenWindows(load_tokens(job.train_bin), mcfg.seq_len, str(job.train_bin))
    val_w = TokenWindows(load_tokens(job.val_bin), mcfg.seq_len, str(job.val_bin))
    bs = int(tcfg["batch_size"])
    if train_w.n < bs:
        raise UserError(
            f"{job.train_bin}: {train_w.n} sequences is fewer than one batch of {bs}; lower train.batch_size"
        )
    steps_per_epoch = train_w.n // bs
    total = steps_per_epoch * int(tcfg["epochs"])
    if tcfg.get("max_steps"):
        total = min(total, int(tcfg["max_steps"]))
    return Plan(mcfg, train_w, val_w, bs, steps_per_epoch, max(total, 1))


def _fingerprint(job: PretrainJob, plan: Plan, device: torch.device) -> str:
    # what changes the result; device/threads/ckpt cadence/logging do not, except CPU threads
    ignore = ("threads", "device", "ckpt_every", "ckpt_minutes", "log_every", "keep_checkpoint")
    config_fp = fingerprint(
        {
            "model": plan.mcfg.to_dict(),
            "train": {k: v for k, v in job.tcfg.items() if k not in ignore},
            "threads": threads_for_fingerprint(device, job.tcfg.get("threads")),
            "seed": job.seed,
            "n_train": int(len(plan.train_w.tokens)),
            "n_val": int(len(plan.val_w.tokens)),
        }
    )  # + the content of the token files (and the tokenizer and text they were made from)
    return identity.with_data(config_fp, identity.token_files_id(job.train_bin, job.val_bin))


def _resume(run: Run, ckpt: Checkpoint, fp: str, total: int) -> None:
    state = ckpt.load()
    if state is None:
        return
    if not identity.may_resume(state.get("fingerprint"), fp, ckpt.path, "the token files"):
        return
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    restore_rng(state["rng"], run.device)
    run.step, run.rows = state["step"], state["metrics"]
    run.traj = state.get("trajectory", [])
    run.loss_sum, run.loss_n = state["loss_sum"].to(run.device), state["loss_n"]
    log.info("resumed from %s at step %d/%d", ckpt.path, run.step, total)


def _save(run: Run, ckpt: Checkpoint, fp: str) -> None:
    state = {
        "fingerprint": fp,
        "step": run.step,
        "model": run.model.state_dict(),
        "optimizer": run.opt.state_dict(),
        "scheduler": run.sched.state_dict(),
        "rng": rng_state(run.device),
        "metrics": run.rows,
        "trajectory": run.traj,
        "loss_sum": run.loss_sum.cpu(),
        "loss_n": run.loss_n,
    }
    # a NaN can appear between two loss checks: never let it become the "last good" checkpoint
    finite = is_finite(state["model"], run.loss_sum)
    ckpt.save(state, finite, f"checkpoint at step {run.step}")


def _eval_row(job: PretrainJob, plan: Plan, run: Run, fmodel, ctx, train_loss: float, tps: float):
    tcfg = job.tcfg
    ls, n = float(tcfg["label_smoothing"]), tcfg.get("eval_batches")
    val_ce, val_sm = evaluate_loss(fmodel, plan.val_w, plan.batch_size, n, ctx, run.device, ls)
    train_ce, train_sm = evaluate_loss(fmodel, plan.train_w, plan.batch_size, n, ctx, run.device, ls)
    log.info("eval step %d: train %.4f val %.4f (plain CE %.4f)", run.step, train_loss, val_sm, val_ce)
    return {
        "step": run.step,
        "epoch": round(run.step / plan.steps_per_epoch, 4),
        "tokens": plan.tokens(run.step),
        "train_loss": round(train_loss, 5),
        "val_loss": round(val_sm, 5),
        "val_ce": round(val_ce, 5),
        "lr": run.sched.get_last_lr()[0],
        "tokens_per_s": round(tps, 1),
        "train_eval_loss": round(train_sm, 5),
        "train_eval_ce": round(train_ce, 5),
    }


def _loop(job: PretrainJob, plan: Plan, run: Run, ckpt: Checkpoint, fp: str, stop_after: int | None):
    tcfg, bs, spe, total = job.tcfg, plan.batch_size, plan.steps_per_epoch, plan.total
    opts = resolve({"train": tcfg})["train"]
    ctx = autocast_context(run.device, opts["precision"])
    fmodel = maybe_compile(run.model, opts["compile"], run.device)
    fmodel.train()
    eval_every, log_every = int(tcfg["eval_every"]), int(tcfg["log_every"])
    ckpt_every = int(tcfg.get("ckpt_every") or 0)
    minutes = tcfg.get("ckpt_minutes")
    ckpt_timer = Timer(60.0 * float(minutes) if minutes else None)
    progress_timer = Timer(PROGRESS_SECONDS)
    progress = Progress(f"pretrain {job.variant} s{job.seed}", total, run.step)
    t0, step0 = time.perf_counter(), run.step
    order, order_epoch = None, -1
    with stop_signals() as stop:
        while run.step < total:
            epoch, pos = divmod(run.step, spe)
            if epoch != order_epoch:
                order, order_epoch = plan.train_w.order(job.seed, epoch), epoch
            x, y = plan.train_w.batch(order[pos * bs : (pos + 1) * bs], run.device)
            run.loss_sum += train_step(fmodel, x, y, run.opt, run.sched, tcfg, ctx)
            run.loss_n += 1
            run.step += 1
            step = run.step
            is_eval = step % eval_every == 0 or step % spe == 0 or step == total
            # reading the loss is a host sync: only at log/eval steps and about once a minute
            show = step % log_every == 0 or progress_timer.due()
            if show or is_eval:
                train_loss = (run.loss_sum / max(run.loss_n, 1)).item()
                if not math.isfinite(train_loss):
                    raise UserError(
                        f"non-finite training loss at step {step}; last good checkpoint kept in {ckpt.dir}"
                    )
                tps = plan.tokens(step - step0) / max(time.perf_counter() - t0, 1e-9)
                if show:
                    progress.log(step, train_loss, tps)
                    progress_timer.reset()
                if is_eval:
                    run.rows.append(_eval_row(job, plan, run, fmodel, ctx, train_loss, tps))
                    run.traj += trajectory.trajectory_rows(run.model, step, run.rows[-1]["epoch"])
                    run.reset_loss()
                    t0, step0 = time.perf_counter(), step
            if stop.signum is not None or (stop_after is not None and step >= stop_after):
                _save(run, ckpt, fp)
                raise SystemExit(128 + (stop.signum or signal.SIGTERM))
            if step < total and ((ckpt_every and step % ckpt_every == 0) or ckpt_timer.due()):
                _save(run, ckpt, fp)
                ckpt_timer.reset()


def run_pretrain(job: PretrainJob, stop_after: int | None = None) -> list[dict[str, Any]]:
    """Train and write model.safetensors, config.json, metrics.csv, trajectory.csv to ``out_dir``; return metrics rows.

    ``stop_after`` (tests) saves a checkpoint and raises SystemExit after that many steps.
    """
    tcfg = job.tcfg
    opts = resolve({"train": tcfg})["train"]  # what a hand-built job omits takes config.yaml's value
    device = setup_device(opts["device"], tcfg.get("threads"))  # None: torch's own thread count
    plan = plan_steps(job)
    model = build_model(plan.mcfg, seed=job.seed).to(device)  # sparsity's frac_zero_init rebuilds this
    opt = make_optimizer(model, tcfg, device)
    run = Run(model, opt, make_scheduler(opt, tcfg, plan.total), device)
    run.reset_loss()
    fp = _fingerprint(job, plan, device)
    torch.manual_seed(job.seed)
    ckpt = Checkpoint(job.ckpt_dir, "ckpt.pt")
    with ckpt.locked():
        _resume(run, ckpt, fp, plan.total)
        run.traj = run.traj or trajectory.trajectory_rows(model, 0, 0.0)  # where the zeros start
        log.info(
            "%s twin seed %d: %.2fM params, %d steps (%d/epoch), batch %d x %d on %s",
            job.variant, job.seed, model.num_params() / 1e6, plan.total, plan.steps_per_epoch,
            plan.batch_size, plan.mcfg.seq_len, device,
        )  # fmt: skip
        _loop(job, plan, run, ckpt, fp, stop_after)
        extra = {"train": tcfg, "variant": job.variant, "seed": job.seed, **(job.extra or {})}
        extra[identity.RECORD] = identity.tokenizer_of_tokens(
            job.train_bin, (job.extra or {}).get("tokenizer")
        )
        save_model(model, job.out_dir, extra)
        write_csv(Path(job.out_dir) / "metrics.csv", run.rows, METRIC_FIELDS)
        write_csv(Path(job.out_dir) / "trajectory.csv", run.traj, trajectory.FIELDS)
        if not opts["keep_checkpoint"]:
            shutil.rmtree(job.ckpt_dir, ignore_errors=True)
    return run.rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True)
    p.add_argument("--variant", required=True, choices=list(VARIANTS))
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--train", required=True, type=Path, help="train .bin from `tokenize`")
    p.add_argument("--val", required=True, type=Path, help="val .bin from `tokenize`")
    p.add_argument("--tokenizer", type=Path, help="recorded in config.json")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--ckpt-dir", required=True, type=Path)
    p.add_argument("--epochs", type=int, help="default: train.epochs, off the main corpus convergence.epochs")
    p.add_argument("--threads", type=int, help="CPU threads (Snakemake passes {threads})")


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    tcfg = dict(config["train"])
    tcfg["epochs"] = args.epochs or pretrain_epochs(config, args.corpus)
    if args.threads:
        tcfg["threads"] = args.threads
    extra = {"corpus": args.corpus, "tokenizer": str(args.tokenizer) if args.tokenizer else None}
    job = PretrainJob(
        args.train,
        args.val,
        args.out_dir,
        args.ckpt_dir,
        config["model"],
        tcfg,
        args.variant,
        args.seed,
        extra,
    )
    run_pretrain(job)
    sys.stdout.flush()
