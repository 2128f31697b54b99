"""`ternarylm pretrain`: train one twin (ternary or fp32) on a tokenized corpus, resumably.

Fast path (the default on CUDA): bf16 autocast, SDPA attention, fused AdamW, ``torch.compile``,
pinned-memory batches from the uint16 memmap and no host syncs inside a step (the loss is read
every ``log_every`` steps). On CPU it runs eager fp32 and is deterministic for a seed.

Resumability: every ``ckpt_every`` steps (and on SIGTERM/SIGUSR1, e.g. SLURM preemption) the
model, optimizer, scheduler, RNG states, step and metrics so far are saved atomically to
``--ckpt-dir``; rerunning the same command resumes there and gives bitwise the same result as an
uninterrupted run on CPU. The checkpoint lives outside the rule's outputs, which Snakemake
deletes when a job fails.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ternarylm.encode import load_tokens
from ternarylm.io import UserError, atomic_path, progress, write_csv
from ternarylm.model import ModelConfig, build_model, lm_loss, save_model

log = logging.getLogger("ternarylm.train")
METRIC_FIELDS = ["step", "epoch", "tokens", "train_loss", "val_loss", "val_ce", "lr", "tokens_per_s"]


# --- device / precision / optimizer helpers (also used by finetune and the throughput benchmark)
def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda requested but torch sees no CUDA GPU")
    return torch.device(name)


def autocast_context(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA for ``auto``; ``bf16`` forces it (CPU too); ``fp32`` disables it."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(model: nn.Module, tcfg: dict[str, Any], device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not norms); fused kernel on CUDA."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": tcfg["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=tcfg["lr"], betas=tuple(tcfg["betas"]), fused=device.type == "cuda")


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
class _StopRequest:
    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum, frame) -> None:
        self.signum = signum
        log.warning("received signal %d: saving a checkpoint after this step", signum)


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def run_pretrain(
    train_bin: Path,
    val_bin: Path,
    out_dir: Path,
    ckpt_dir: Path,
    model_cfg: dict[str, Any],
    tcfg: dict[str, Any],
    variant: str,
    seed: int,
    extra: dict[str, Any] | None = None,
    stop_after: int | None = None,
) -> list[dict[str, Any]]:
    """Train and write model.safetensors, config.json, metrics.csv to ``out_dir``; return metrics rows.

    ``stop_after`` (tests) saves a checkpoint and raises SystemExit after that many steps.
    """
    device = resolve_device(tcfg.get("device", "auto"))
    if device.type == "cpu" and tcfg.get("threads"):
        torch.set_num_threads(int(tcfg["threads"]))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    train_tokens, val_tokens = load_tokens(train_bin), load_tokens(val_bin)
    mcfg = ModelConfig.from_dict({**model_cfg, "linear": variant})
    vocab = json.loads(Path(train_bin).with_suffix(".json").read_text())["vocab_size"]
    mcfg.vocab_size = vocab
    train_w = TokenWindows(train_tokens, mcfg.seq_len, str(train_bin))
    val_w = TokenWindows(val_tokens, mcfg.seq_len, str(val_bin))
    bs = int(tcfg["batch_size"])
    if train_w.n < bs:
        raise UserError(
            f"{train_bin}: {train_w.n} sequences is fewer than one batch of {bs}; lower train.batch_size"
        )
    steps_per_epoch = train_w.n // bs
    total = steps_per_epoch * int(tcfg["epochs"])
    if tcfg.get("max_tokens"):
        total = min(total, int(tcfg["max_tokens"]) // (bs * mcfg.seq_len))
    if tcfg.get("max_steps"):
        total = min(total, int(tcfg["max_steps"]))
    total = max(total, 1)

    model = build_model(mcfg, seed=seed).to(device)
    opt = make_optimizer(model, tcfg, device)
    sched = make_scheduler(opt, tcfg, total)
    ctx = autocast_context(device, tcfg.get("precision", "auto"))
    fp = _fingerprint(
        {
            "model": mcfg.to_dict(),
            "train": {k: v for k, v in tcfg.items() if k not in ("threads", "device")},
            "seed": seed,
            "n_train": int(len(train_tokens)),
            "n_val": int(len(val_tokens)),
        }
    )

    ckpt_path = Path(ckpt_dir) / "ckpt.pt"
    step, rows, loss_sum, loss_n = 0, [], torch.zeros((), device=device), 0
    torch.manual_seed(seed)
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state.get("fingerprint") != fp:
            log.warning("checkpoint %s belongs to another config; starting from scratch", ckpt_path)
        else:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng_cpu"])
            if device.type == "cuda" and state.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(state["rng_cuda"])
            step, rows = state["step"], state["metrics"]
            loss_sum, loss_n = state["loss_sum"].to(device), state["loss_n"]
            log.info("resumed from %s at step %d/%d", ckpt_path, step, total)

    def save_ckpt() -> None:
        with atomic_path(ckpt_path) as tmp:
            torch.save(
                {
                    "fingerprint": fp,
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                    "metrics": rows,
                    "loss_sum": loss_sum.cpu(),
                    "loss_n": loss_n,
                },
                tmp,
            )
        log.info("checkpoint saved at step %d -> %s", step, ckpt_path)

    stop = _StopRequest()
    old_handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGUSR1)}
    fmodel = maybe_compile(model, tcfg.get("compile", "auto"), device)
    fmodel.train()
    eval_every, log_every = int(tcfg["eval_every"]), int(tcfg["log_every"])
    ckpt_every = int(tcfg["ckpt_every"])
    ls = float(tcfg["label_smoothing"])
    log.info(
        "%s twin seed %d: %.2fM params, %d steps (%d/epoch), batch %d x %d on %s",
        variant,
        seed,
        model.num_params() / 1e6,
        total,
        steps_per_epoch,
        bs,
        mcfg.seq_len,
        device,
    )
    t0, tok0 = time.perf_counter(), step
    order, order_epoch = None, -1
    bar = progress(total=total, initial=step, desc=f"pretrain {variant} s{seed}", unit="step")
    try:
        while step < total:
            epoch, pos = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = train_w.order(seed, epoch), epoch
            x, y = train_w.batch(order[pos * bs : (pos + 1) * bs], device)
            loss_sum += train_step(fmodel, x, y, opt, sched, tcfg, ctx)
            loss_n += 1
            step += 1
            bar.update(1)
            end_of_epoch = step % steps_per_epoch == 0
            if step % log_every == 0 or step % eval_every == 0 or end_of_epoch or step == total:
                train_loss = (loss_sum / max(loss_n, 1)).item()
                if not math.isfinite(train_loss):
                    raise UserError(
                        f"non-finite training loss at step {step}; last good checkpoint kept in {ckpt_dir}"
                    )
                elapsed = time.perf_counter() - t0
                tps = (step - tok0) * bs * mcfg.seq_len / max(elapsed, 1e-9)
                if step % log_every == 0:
                    log.info(
                        "step %d/%d epoch %.2f loss %.4f lr %.2e %.0f tok/s",
                        step,
                        total,
                        step / steps_per_epoch,
                        train_loss,
                        sched.get_last_lr()[0],
                        tps,
                    )
                if step % eval_every == 0 or end_of_epoch or step == total:
                    val_ce, val_sm = evaluate_loss(
                        fmodel, val_w, bs, tcfg.get("eval_batches"), ctx, device, ls
                    )
                    rows.append(
                        {
                            "step": step,
                            "epoch": round(step / steps_per_epoch, 4),
                            "tokens": step * bs * mcfg.seq_len,
                            "train_loss": round(train_loss, 5),
                            "val_loss": round(val_sm, 5),
                            "val_ce": round(val_ce, 5),
                            "lr": sched.get_last_lr()[0],
                            "tokens_per_s": round(tps, 1),
                        }
                    )
                    log.info(
                        "eval step %d: train %.4f val %.4f (plain CE %.4f)", step, train_loss, val_sm, val_ce
                    )
                    loss_sum, loss_n = torch.zeros((), device=device), 0
                    t0, tok0 = time.perf_counter(), step
            if stop.signum is not None or (stop_after is not None and step >= stop_after):
                save_ckpt()
                raise SystemExit(128 + (stop.signum or 15))
            if step % ckpt_every == 0 and step < total:
                save_ckpt()
    finally:
        bar.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)

    save_model(model, out_dir, {"train": tcfg, "variant": variant, "seed": seed, **(extra or {})})
    write_csv(Path(out_dir) / "metrics.csv", rows, METRIC_FIELDS)
    if not tcfg.get("keep_checkpoint", False):
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True)
    p.add_argument("--variant", required=True, choices=["ternary", "fp32"])
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--train", required=True, type=Path, help="train .bin from `tokenize`")
    p.add_argument("--val", required=True, type=Path, help="val .bin from `tokenize`")
    p.add_argument("--tokenizer", type=Path, help="recorded in config.json")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--ckpt-dir", required=True, type=Path)
    p.add_argument("--epochs", type=int, help="override train.epochs (convergence runs)")
    p.add_argument("--threads", type=int, help="CPU threads (Snakemake passes {threads})")


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    tcfg = dict(config["train"])
    if args.epochs:
        tcfg["epochs"] = args.epochs
    if args.threads:
        tcfg["threads"] = args.threads
    extra = {"corpus": args.corpus, "tokenizer": str(args.tokenizer) if args.tokenizer else None}
    run_pretrain(
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
    sys.stdout.flush()
