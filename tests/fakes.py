"""Fake artifacts in the exact results layout, for report, claims and figure tests.

``make_fake_results(root, overrides)`` writes a resolved config and every file the notebooks read:
tiny models with whatever config ``overrides`` gives (so a paper-scale config costs nothing), and
metrics chosen by the caller's overrides of ``FAKE`` / the ``numbers`` argument.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
import yaml

from ternarylm.io import write_csv, write_json
from ternarylm.model import build_model, save_model
from ternarylm.report import paper
from ternarylm.report.artifacts import Artifacts
from ternarylm.report.formats import NONCAUSAL
from ternarylm.sparsity import FIELDS, sparsity_rows

ROOT = Path(__file__).resolve().parents[1]


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


FAKE = {
    "data_source": "local",
    "main_corpus": "tinystories",
    "convergence_corpora": ["tinystories", "shakespeare"],
    "tokenizer": {"vocab_size": 300},
    "model": {"d_model": 64, "n_layers": 12, "n_heads": 4, "ffn_hidden": 128, "seq_len": 32},
    "seeds": [0, 1, 2],
    "train": {"epochs": 3},
    "convergence": {"seeds": [0, 1], "epochs": 3},
    "finetune": {"tasks": ["mrpc", "sst2"]},
    "bench": {"devices": ["cpu"]},
}
CURVE_FIELDS = ["epoch", "step", "lr", "train_loss", "heldout_loss", "heldout_f1", "dev_loss", "dev_f1"]
CURVE_FIELDS += ["dev_accuracy", "dev_mcc"]
# eval-mode val/train CE ratio of each pretraining variant (the paper's 1.05x / 3.51x pattern)
RATIO = {"ternary": 1.05, "fp32": 3.5, NONCAUSAL: 3.5}


def fake_tokenizer(path: str | Path, n_vocab: int) -> None:
    """A tokenizer.json with ``n_vocab`` WordPiece entries (what Artifacts.tokenizer_vocab reads)."""
    vocab = {f"tok{i}": i for i in range(n_vocab)}
    write_json(path, {"model": {"type": "WordPiece", "vocab": vocab}, "added_tokens": []})


def fake_eval(ratio: float, seed: int) -> dict[str, Any]:
    train_ce = 3.0 + 0.01 * seed
    val_ce = train_ce * ratio
    return {
        "label_smoothing": 0.1,
        "train_ce": train_ce,
        "val_ce": val_ce,
        "train_ce_smoothed": train_ce + 0.5,
        "val_ce_smoothed": val_ce + 0.5,
        "val_ppl": math.exp(val_ce),
        "val_ppl_smoothed": math.exp(val_ce + 0.5),
        "train_ppl": math.exp(train_ce),
        "loss_ratio": ratio,
        "loss_ratio_smoothed": (val_ce + 0.5) / (train_ce + 0.5),
    }


def fake_curve(corpus: str, variant: str, seed: int, epochs: int) -> list[dict[str, Any]]:
    """metrics.csv rows: falling train loss, a val loss that drifts up by the variant's gap."""
    gap = 0.05 if variant == "ternary" else 0.6
    rows = []
    for step in range(5, 10 * epochs + 1, 5):
        shift = {"shakespeare": 0.6, "writingprompts": 0.3}.get(corpus, 0.0) - 0.02 * seed
        train = 3.0 + 3.0 * math.exp(-step / 12) + shift - (0.3 if variant != "ternary" else 0)
        rows.append(
            {"step": step, "epoch": step / 10, "tokens": step * 512, "train_loss": round(train, 4)}
            | {
                "val_loss": round(train + gap * step / 30, 4),
                "val_ce": round(train + gap * step / 30 - 0.3, 4),
            }
            | {"lr": 1e-3, "tokens_per_s": 1000.0}
        )
    return rows


def write_pretraining(art: Artifacts, cfg: dict[str, Any]) -> None:
    mcfg = {**cfg["model"], "vocab_size": cfg["tokenizer"]["vocab_size"]}
    fake_tokenizer(art.tokenizer_json(), cfg["tokenizer"]["vocab_size"])
    for corpus in {art.main, *art.convergence_corpora}:
        write_json(art.manifest(corpus), {"corpus": corpus, "splits": {"train": {"n_docs": 2817}}})
    runs = art.main_runs() + [r for c in art.convergence_corpora for r in art.convergence_runs(c)]
    for corpus, v, s in dict.fromkeys(runs + art.noncausal_runs()):
        write_csv(art.metrics_csv(corpus, v, s), fake_curve(corpus, v, s, cfg["train"]["epochs"]))
        if corpus != art.main:
            continue
        write_json(art.eval_json(corpus, v, s), fake_eval(RATIO[v], s))
        if v == NONCAUSAL:  # a pretraining control: evaluated, never fine-tuned, benched or sparsity-counted
            continue
        model = build_model({**mcfg, "linear": v}, seed=s)
        save_model(model, art.model_dir(corpus, v, s), {"train": cfg["train"], "variant": v, "seed": s})
        write_csv(art.sparsity_csv(v, s), sparsity_rows(model, seed=s), FIELDS)


def fake_finetune(cfg: dict[str, Any], task: str, backbone: str, seed: int) -> tuple[dict, list[dict]]:
    bonus = {"fp32": 1.5, "scratch": -1.0}.get(backbone, 0.0)
    score = {"accuracy": 70.0 + seed + bonus, "f1": 81.5 + seed + bonus, "mcc": 10.0 + seed, "n": 408}
    major = {"accuracy": 68.38, "f1": 81.22, "mcc": 0.0, "n": 408}
    metrics = {
        "task": task,
        "variant": backbone,
        "seed": seed,
        "data_source": cfg["data_source"],
        "primary_metric": paper.TASK_METRIC[task],
        "dev": {"split": "dev", **score, "loss": 0.6},
        "test": {"split": "test", **score, "loss": 0.6} if task == "mrpc" else None,
        "majority": {"label": 1, "dev": major, "test": major},
    }
    curve = [
        {"epoch": e, "step": 100 * e, "lr": 1e-5, "train_loss": 0.7 - 0.05 * e - bonus / 30}
        | {"heldout_loss": 0.65, "heldout_f1": 80 + e, "dev_loss": 0.62 - 0.01 * e}
        | {"dev_f1": 80.0 + e + seed + bonus, "dev_accuracy": 68.0 + e + bonus, "dev_mcc": 5.0 * e}
        for e in (1, 2, 3)
    ]
    return metrics, curve


def write_bench(art: Artifacts) -> None:
    for dev in art.devices:
        rows = []
        for v, fmt, mb, ms in (
            ("fp32", "torch-fp32", 528.0, 9.0),
            ("fp32", "torch-int8", 180.0, 8.0),
            ("fp32", "gguf-f32", 528.0, 5.0),
            ("ternary", "torch-fp32", 528.0, 11.0),
            ("ternary", "torch-packed", 120.0, 7.0),
            ("ternary", "gguf-tq2_0", 118.0, 3.0),
        ):
            for batch in (1, 8):
                rows.append(
                    {"device": dev, "variant": v, "format": fmt, "batch": batch, "weight_mb": mb}
                    | {"peak_rss_mb": mb + 400, "base_rss_mb": 380.0, "ms_per_token": ms * (1 + batch / 16)}
                    | {"tokens_per_s": 1000 * batch / ms}
                )
        write_csv(art.bench_csv(dev), rows)
        write_json(art.bench_env(dev), {"device": dev, "platform": "fake", "torch": torch.__version__})


def make_fake_results(root: Path, overrides: dict | None = None) -> Path:
    """Write a resolved config + every artifact the notebooks read under ``root``; return the config path."""
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg = merge(merge(base, FAKE), overrides or {})
    cfg["results_dir"] = str(root)
    art = Artifacts(root, cfg)
    config_path = root / "config.resolved.json"
    write_json(config_path, cfg)
    write_pretraining(art, cfg)
    for task in art.tasks:
        for backbone in art.backbones:
            for s in art.seeds:
                metrics, curve = fake_finetune(cfg, task, backbone, s)
                write_json(art.finetune_file(task, backbone, s, "metrics.json"), metrics)
                write_csv(art.finetune_file(task, backbone, s, "curve.csv"), curve, CURVE_FIELDS)
    write_bench(art)
    return config_path
