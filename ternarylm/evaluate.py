"""`ternarylm evaluate`: language-modelling metrics of a pretrained twin (T2, T3).

Perplexity is reported two ways: ``val_ppl = exp(plain CE)`` (the usual definition) and
``val_ppl_smoothed = exp(label-smoothed CE)`` — the training objective, which is what the paper's
58.42 corresponds to (it is computed from the label-smoothed loss). The overfitting ratio of T3
is ``loss_ratio = val_ce / train_ce`` with both losses measured here in eval mode (no dropout).
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import torch

from ternarylm.config import resolve
from ternarylm.encode import load_tokens
from ternarylm.identity import check_tokens
from ternarylm.io import UserError, read_json, write_json
from ternarylm.model import load_model
from ternarylm.provenance import provenance
from ternarylm.train import TokenWindows, evaluate_loss
from ternarylm.trainkit import autocast_context, resolve_device

log = logging.getLogger("ternarylm.evaluate")


def evaluate_model(model_dir: Path, train_bin: Path, val_bin: Path, config: dict[str, Any]) -> dict[str, Any]:
    config = resolve(config)
    tcfg, ecfg = config["train"], config["evaluate"]
    device = resolve_device(tcfg["device"])
    model = load_model(model_dir, device)
    for path in (val_bin, train_bin):
        check_tokens(model_dir, path)
    ctx = autocast_context(device, tcfg["precision"])
    ls, bs, L = float(tcfg["label_smoothing"]), int(tcfg["batch_size"]), model.cfg.seq_len
    out: dict[str, Any] = {"model_dir": str(model_dir), "label_smoothing": ls, "params": model.num_params()}
    out |= model_record(model_dir, ecfg, val_bin)
    for split, path, n_batches in (
        ("val", val_bin, ecfg["val_batches"]),
        ("train", train_bin, ecfg["train_batches"]),
    ):
        w = TokenWindows(load_tokens(path, model.cfg.vocab_size), L, str(path))
        ce, sm = evaluate_loss(model, w, bs, n_batches, ctx, device, ls)
        n_seq = min(w.n, n_batches * bs) if n_batches else w.n
        out.update(
            {
                f"{split}_ce": ce,
                f"{split}_ce_smoothed": sm,
                f"{split}_ppl": math.exp(ce),
                f"{split}_ppl_smoothed": math.exp(sm),
                f"n_{split}_tokens": n_seq * L,
            }
        )
        log.info(
            "%s: CE %.4f (PPL %.2f), label-smoothed CE %.4f (PPL %.2f)",
            split,
            ce,
            math.exp(ce),
            sm,
            math.exp(sm),
        )
    out["loss_ratio"] = out["val_ce"] / out["train_ce"]
    out["loss_ratio_smoothed"] = out["val_ce_smoothed"] / out["train_ce_smoothed"]
    bad = [k for k, v in out.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:  # never publish NaN metrics (and exit 0) for a broken model
        raise UserError(f"{model_dir}: non-finite metrics ({', '.join(bad)}); the model is broken")
    out["provenance"] = provenance(device=device)  # threads: torch's, as set by --threads
    return out


def model_record(model_dir: Path, ecfg: dict[str, Any], val_bin: Path) -> dict[str, Any]:
    """What this evaluation measured, beside its numbers: the model as its folder records it
    (architecture, quantization, variant, seed, training settings), the batches asked for and the
    validation documents (the claims engine judges comparability from these, not from the config)."""
    meta = read_json(Path(model_dir) / "config.json")
    val_meta = val_bin.with_suffix(".json")
    n_docs = read_json(val_meta).get("n_docs") if val_meta.exists() else None
    return {
        "variant": meta.get("variant"),
        "seed": meta.get("seed"),
        "model": meta.get("model"),
        "trained": meta.get("train"),
        "val_batches": ecfg["val_batches"],
        "train_batches": ecfg["train_batches"],
        "n_val_docs": n_docs,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="pretrain output folder")
    p.add_argument("--train", required=True, type=Path)
    p.add_argument("--val", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int)


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    write_json(args.out, evaluate_model(args.model, args.train, args.val, config))
