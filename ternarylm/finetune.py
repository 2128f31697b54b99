"""Fine-tune a pretrained twin on MRPC, SST-2 or CoLA (paper Table T4, seed README extras T5).

``ternarylm finetune --config C --task mrpc --model DIR --tokenizer T --out DIR`` writes
``DIR/curve.csv`` (one row per epoch) and then ``DIR/metrics.json``, both atomically.

``--backbone scratch`` (instead of ``--model``) is the random-init control: the ternary twin's
architecture from the config's ``model`` section with the tokenizer's vocabulary, built by
``build_model(..., seed)`` as pretraining builds it (so exactly the ternary twin's step-0
weights), then fine-tuned with the same settings and budget; metrics say ``variant: scratch``.

Input encoding, the classifier head and the metrics: :mod:`ternarylm.classifier`.

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

bf16 autocast on CUDA where the GPU has native bf16 (``precision: auto``; trainkit.resolve_precision), fp32
on CPU and older GPUs; with a fixed seed and thread count a CPU run
is deterministic. With ``--ckpt DIR`` the state after every epoch is saved there (checksummed,
never non-finite, with a fingerprint of backbone, tokenizer, task, seed and settings; the CLI
locks DIR) and a rerun resumes from it with the same result as an uninterrupted run. With
``compile`` (auto: on CUDA) batches get fixed bucketed shapes so the compiled model stops
compiling after the first epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ternarylm import identity
from ternarylm import trainkit as tk
from ternarylm.checkpoint import Checkpoint, sha256_file
from ternarylm.classifier import (
    SequenceClassifier,
    classification_metrics,
    encode_examples,
    majority_label,
    special_ids,
    split_heldout,
)
from ternarylm.config import resolve
from ternarylm.fit import (  # noqa: F401  (re-exported: tests and the CLI import them here)
    CURVE_FIELDS,
    STATE_NAME,
    Fit,
    FitJob,
    settings,
    train_classifier,
)
from ternarylm.glue import (
    PAIR_TASKS,
    PRIMARY_METRIC,
    TASKS,
    check_task,
    has_split,
    load_split,
)
from ternarylm.io import UserError, read_json, write_csv, write_json
from ternarylm.layout import SCRATCH
from ternarylm.provenance import provenance
from ternarylm.quant import BitLinear

log = logging.getLogger("ternarylm.finetune")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="pretrained twin folder (model.safetensors, config.json)")
    source.add_argument(
        "--backbone",
        choices=[SCRATCH],
        help="scratch: no pretraining, the ternary architecture from random init (needs --seed)",
    )
    parser.add_argument("--tokenizer", required=True, help="tokenizer.json")
    parser.add_argument("--out", required=True, help="output folder for metrics.json and curve.csv")
    parser.add_argument("--seed", type=int, default=None, help="fine-tuning seed (default: the backbone's)")
    parser.add_argument("--ckpt", default=None, help="folder for per-epoch resumable state (optional)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: finetune.threads)")


def _label_summary(labels: Sequence[int]) -> dict[str, Any]:
    return {"n": len(labels), "positive_frac": sum(labels) / len(labels)}


def _load_examples(
    task: str, config: dict[str, Any], ft: dict[str, Any]
) -> tuple[dict[str, list], str | None]:
    """train -> fit part + held-out part (selection); dev and test are only measured."""
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
    return examples, test_note


def _fingerprint(job: FitJob, backbone: Any, tokenizer_path: str | Path, max_len: int) -> str:
    # a resume is only valid on the same backbone weights, tokenizer, data, task, seed and settings
    ignore = ("keep_checkpoint", "device", "threads", "tasks")
    config_fp = tk.fingerprint(
        {
            "backbone": backbone,
            "tokenizer": sha256_file(Path(tokenizer_path)),
            "task": job.task,
            "seed": job.seed,
            "settings": {k: v for k, v in job.ft.items() if k not in ignore},
            "threads": tk.threads_for_fingerprint(job.device, job.ft["threads"]),
            "max_len": max_len,
            "n": {k: len(v[1]) for k, v in job.data.items()},
        }
    )  # + the examples themselves (token ids and labels of every split): a relabelled file is new data
    return identity.with_data(config_fp, {k: [v[0], v[1]] for k, v in job.data.items()})


def _split_sources(job: FitJob, config: dict[str, Any], test_note: str | None) -> dict[str, Any]:
    ft, data, synthetic = job.ft, job.data, config.get("data_source") == "synthetic"
    splits = {
        "train": {"from": "train minus held-out", **_label_summary(data["train"][1])},
        "heldout": {
            "from": f"{ft['heldout_frac']:.0%} of train (split_seed {ft['split_seed']})",
            **_label_summary(data["heldout"][1]),
        },
        "dev": {
            "from": "synthetic dev" if synthetic else "GLUE validation",
            **_label_summary(data["dev"][1]),
        },
    }
    if "test" in data:
        source = "synthetic test" if synthetic else "MSR labeled test (test_labeled.txt)"
        splits["test"] = {"from": source, **_label_summary(data["test"][1])}
    else:
        splits["test"] = {"from": test_note or f"{job.task} has no labeled test split", "n": 0}
    return splits


def _final_metrics(model: SequenceClassifier, job: FitJob, metrics: dict[str, Any]) -> dict[str, Any]:
    """Selected model and majority baseline on every measured split, into ``metrics``."""
    majority = majority_label(job.data["train"][1])
    metrics.update(dev=None, test=None)
    metrics["majority"] = {"label": majority, "from": "most frequent label of the train part"}
    for split in ("heldout", "dev", "test"):
        if split not in job.data:
            continue
        m = job.evaluate(model, split)
        metrics[split] = {"split": split, **m}
        labels = job.data[split][1]
        metrics["majority"][split] = {
            "split": split,
            **classification_metrics(labels, [majority] * len(labels)),
        }
    return metrics


def _load_backbone(
    model_dir: Path | None, vocab_size: int, config: dict[str, Any], seed: int | None, device: torch.device
) -> tuple[nn.Module, str, int, Any]:
    """(backbone, variant, seed, identity for the checkpoint fingerprint) of a pretrained twin in
    ``model_dir``, or with ``model_dir=None`` the scratch control; the torch RNG is then where the
    twin's load leaves it either way (seeded, one model init), so the classifier heads match."""
    from ternarylm.model import build_model, load_model, require_causal, variant_config

    if model_dir is None:
        if seed is None:
            raise UserError("--backbone scratch needs --seed (there is no pretraining run to take it from)")
        # the ternary twin's pretraining model (train.plan_steps builds the same config) at step 0
        cfg = variant_config(resolve(config)["model"], "ternary", vocab_size)
        return build_model(cfg, seed=seed).to(device), SCRATCH, seed, {SCRATCH: cfg.to_dict()}
    require_causal(model_dir, "fine-tune (the classifier's right padding needs a causal model)")
    meta = read_json(model_dir / "config.json")
    seed = int(meta.get("seed", 0)) if seed is None else seed
    torch.manual_seed(seed)
    backbone = load_model(model_dir, device)
    variant = meta.get("variant", backbone.cfg.linear)
    return backbone, variant, seed, sha256_file(model_dir / "model.safetensors")


def finetune(
    task: str,
    model_dir: str | Path | None,
    tokenizer_path: str | Path,
    config: dict[str, Any],
    seed: int | None = None,
    ckpt_dir: str | Path | None = None,
    stop_after_epoch: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the whole stage in memory: returns (metrics, curve rows). The caller locks ``ckpt_dir``.

    ``model_dir=None`` fine-tunes the scratch control (random init, ``seed`` required).
    """
    from ternarylm.tokenizer import load_tokenizer

    check_task(task)
    ft = settings(config)
    device = tk.setup_device(ft["device"], ft["threads"])
    model_dir = None if model_dir is None else Path(model_dir)
    tok = load_tokenizer(str(tokenizer_path))
    tok.no_truncation()
    tok.no_padding()
    examples, test_note = _load_examples(task, config, ft)

    backbone, variant, seed, backbone_id = _load_backbone(
        model_dir, tok.get_vocab_size(), config, seed, device
    )
    if model_dir is not None:  # ids past its vocab are an IndexError; a foreign vocab is garbage
        identity.check_tokenizer(model_dir, tokenizer_path, backbone.cfg.vocab_size)
    max_len = min(int(ft["max_len"]), backbone.cfg.seq_len)
    if task in PAIR_TASKS and max_len < 5:
        raise UserError(f"finetune.max_len {max_len} leaves no room for a sentence pair")
    data = {k: (encode_examples(tok, v, max_len), [e.label for e in v]) for k, v in examples.items()}
    model = SequenceClassifier(backbone, ft["pooling"], ft["head_dropout"]).to(device)
    job = FitJob(
        task, data, ft, seed, special_ids(tok)["pad"], device, desc=f"finetune {task} {variant} s{seed}"
    )
    if device.type == "cuda" if ft["compile"] == "auto" else ft["compile"]:
        # fine-tuning is launch-bound on a GPU: one compiled graph per bucket length and mode
        # (train/eval), fixed shapes (dynamic=False), all compiled in the first epoch
        job.compiled, job.bucket_max = torch.compile(model, dynamic=False), max_len
    if ckpt_dir is not None:
        job.ckpt = Checkpoint(ckpt_dir, STATE_NAME)
        job.fingerprint = _fingerprint(job, backbone_id, tokenizer_path, max_len)
    n_bitlinear = sum(isinstance(m, BitLinear) for m in backbone.modules())
    sizes = " / ".join(f"{k} {len(v[0])}" for k, v in data.items())
    log.info(
        "finetune %s: backbone %s (%s, %d BitLinear), seed %d, device %s, %s",
        task, model_dir or SCRATCH, backbone.cfg.linear, n_bitlinear, seed, device, sizes,
    )  # fmt: skip

    t0 = time.perf_counter()
    curve, selection = train_classifier(model, job, stop_after_epoch)
    train_seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {
        "task": task,
        "variant": variant,
        "seed": seed,
        "backbone": str(model_dir) if model_dir is not None else SCRATCH,
        "backbone_linear": backbone.cfg.linear,
        "n_bitlinear": n_bitlinear,
        "tokenizer": str(tokenizer_path),
        "data_source": resolve(config)["data_source"],
        "primary_metric": PRIMARY_METRIC[task],
        "units": "percent (accuracy, F1 of label 1, MCC x 100)",
        "selected_epoch": selection["epoch"],
        "selection": selection,
        "splits": _split_sources(job, config, test_note),
    }
    _final_metrics(model, job, metrics)
    metrics["max_len"] = max_len
    metrics["settings"] = {k: v for k, v in ft.items() if k not in ("tasks", "keep_checkpoint")}
    metrics["device"] = str(device)
    metrics["train_seconds"] = round(train_seconds, 2)
    metrics["torch"] = torch.__version__
    metrics["provenance"] = provenance(device=device)  # threads: as setup_device set them
    return metrics, curve


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    out = Path(args.out)
    if args.threads:
        config = {**config, "finetune": {**(config.get("finetune") or {}), "threads": args.threads}}
    ckpt = Checkpoint(args.ckpt, STATE_NAME) if args.ckpt else None
    # the lock spans training, writing the outputs and removing the state: nobody resumes a
    # state that is being deleted
    with ckpt.locked() if ckpt else contextlib.nullcontext():
        metrics, curve = finetune(args.task, args.model, args.tokenizer, config, args.seed, args.ckpt)
        write_csv(out / "curve.csv", curve, CURVE_FIELDS)
        write_json(out / "metrics.json", metrics)
        if ckpt and not settings(config)["keep_checkpoint"]:
            ckpt.remove()
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
