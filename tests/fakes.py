"""Fake artifacts in the exact results layout, for report, claims and figure tests.

``make_fake_results(root, overrides, numbers, paper_scale)`` writes a resolved config and every
file the notebooks read: tiny models with whatever config ``overrides`` gives, and metrics chosen
by ``numbers`` (merged over ``NUMBERS``). ``paper_scale=True`` then rewrites the config (and the
files the comparability reasons read: tokenizer.json, manifests) to the paper's setup
(``PAPER_SCALE``), so the files stay tiny and nothing is "not comparable" for want of scale.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import yaml

from ternarylm.bench import row_role
from ternarylm.config import merge
from ternarylm.io import write_csv, write_json
from ternarylm.model import build_model, save_model
from ternarylm.report import paper
from ternarylm.report.artifacts import Artifacts
from ternarylm.report.formats import NONCAUSAL, SCRATCH
from ternarylm.sparsity import FIELDS, sparsity_rows

ROOT = Path(__file__).resolve().parents[1]


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


def _bench(
    variant: str,
    fmt: str,
    weight_mb: float,
    mem_mb: float,
    ms: float,
    role: str | None = None,
    iqr: float = 0.1,
    **row: Any,
) -> dict:
    """One bench spec: weights, inference memory (GPU peak on cuda, RSS above base on CPU), ms/token,
    its IQR as a fraction of ms; ``row``: columns written as given (repeats, prompt_tokens, ...)."""
    return {
        "variant": variant,
        "format": fmt,
        "weight_mb": weight_mb,
        "mem_mb": mem_mb,
        "ms": ms,
        "role": role,
        "iqr": iqr,
        "row": row,
    }


# every JSON a fake writes records this provenance (the real one depends on the checkout's state)
FAKE_COMMIT = "f" * 40


def fake_provenance(device: str = "cpu", commit: str = FAKE_COMMIT, dirty: bool = False) -> dict:
    return {"git_commit": commit, "git_dirty": dirty, "device": device}


# the metrics every fake artifact carries; ``numbers=`` merges over it (dicts merge, lists replace)
NUMBERS: dict[str, Any] = {
    # per pretraining variant: train CE of seed 0 and the val/train ratio
    "eval": {v: {"train_ce": 3.0, "ratio": r} for v, r in RATIO.items()},
    "seed_step": {"eval": 0.01, "finetune": 1.0},  # added per seed index: the seed spread
    # dev metrics of seed 0 per fine-tuning backbone, and the majority class (MRPC dev: 68.38 % positive)
    "finetune": {
        "ternary": {"accuracy": 70.0, "f1": 81.5, "mcc": 10.0},
        "fp32": {"accuracy": 71.5, "f1": 83.0, "mcc": 10.0},
        SCRATCH: {"accuracy": 69.0, "f1": 80.5, "mcc": 10.0},
    },
    "majority": {"accuracy": 68.38, "f1": 81.22, "mcc": 0.0},
    "bench": {
        "cpu": [
            _bench("fp32", "torch-fp32", 528.0, 548.0, 9.0),
            _bench("fp32", "torch-int8", 180.0, 200.0, 8.0),
            _bench("fp32", "gguf-f32", 528.0, 548.0, 5.0),
            _bench("ternary", "torch-fp32", 528.0, 548.0, 11.0),
            _bench("ternary", "torch-packed", 120.0, 140.0, 7.0),
            _bench("ternary", "gguf-tq2_0", 118.0, 138.0, 3.0),
        ],
        # what a GPU bench measures today: no deployed ternary form (GGUF is CPU-only here)
        "cuda": [
            _bench("fp32", "torch-fp32", 528.0, 700.0, 9.0),
            _bench("ternary", "torch-fp32", 528.0, 700.0, 11.0),
            _bench("ternary", "torch-packed", 120.0, 690.0, 9.5),
        ],
    },
    # ternary twin: zero fraction per layer ("L5": 0.61) replacing the tiny model's; init: write
    # frac_zero_init (the seed's init weights: the model as built), False: leave the column out
    "sparsity": {"zero": {}, "init": True},
    "train_tokens": 2817 * 180,  # tokens/<main>/train.json n_tokens (180 tokens per fake story)
    "final_loss": {},  # corpus -> last-epoch train loss of the ternary twin (default: about 3)
}

# the paper's setup, as a config would give it (tests: comparability reasons all empty)
PAPER_SCALE: dict[str, Any] = {
    "tokenizer": {"vocab_size": 30522, "pretrained": "bert-base-uncased/tokenizer.json"},
    "model": {"d_model": 768, "n_layers": 12, "n_heads": 12, "ffn_hidden": 2048, "seq_len": 128},
    "train": {"epochs": 15, "batch_size": 64, "lr": 3e-4, "warmup_frac": 0.1, "device": "auto"},
    "corpora": {"tinystories": {"max_train_docs": 60000, "max_val_docs": 2000}},
    "convergence": {"epochs": 15},
    "bench": {"devices": ["cuda", "cpu"]},
}


def fake_tokenizer(path: str | Path, n_vocab: int, bert: bool = False) -> None:
    """A tokenizer.json with ``n_vocab`` WordPiece entries (what Artifacts.tokenizer_vocab reads);
    ``bert``: named like bert-base-uncased's vocabulary (its [unusedN] entries)."""
    vocab = {(f"[unused{i}]" if bert else f"tok{i}"): i for i in range(n_vocab)}
    write_json(path, {"model": {"type": "WordPiece", "vocab": vocab}, "added_tokens": []})


def fake_eval(ratio: float, seed: int, train_ce0: float = 3.0, step: float = 0.01) -> dict[str, Any]:
    train_ce = train_ce0 + step * seed
    val_ce = train_ce * ratio
    return {
        "provenance": fake_provenance(),
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


def fake_curve(
    corpus: str, variant: str, seed: int, epochs: int, final: float | None = None
) -> list[dict[str, Any]]:
    """metrics.csv rows: falling train loss, a val loss that drifts up by the variant's gap.

    ``final``: the ternary twin's last-epoch train loss (seed 0) instead of the built-in level.
    """
    gap = 0.05 if variant == "ternary" else 0.6
    corpus_shift = {"shakespeare": 0.6, "writingprompts": 0.3}.get(corpus, 0.0)
    level = 3.0 if final is None else final - corpus_shift
    rows = []
    for step in range(5, 10 * epochs + 1, 5):
        shift = corpus_shift - 0.02 * seed
        train = level + 3.0 * math.exp(-step / 12) + shift - (0.3 if variant != "ternary" else 0)
        if variant == NONCAUSAL:  # it sees the token it predicts: training loss collapses
            train -= 2.5 * (1 - math.exp(-step / 15))
        rows.append(
            {"step": step, "epoch": step / 10, "tokens": step * 512, "train_loss": round(train, 4)}
            | {
                "val_loss": round(train + gap * step / 30, 4),
                "val_ce": round(train + gap * step / 30 - 0.3, 4),
            }
            | {"lr": 1e-3, "tokens_per_s": 1000.0}
        )
    return rows


def write_pretraining(art: Artifacts, cfg: dict[str, Any], numbers: dict[str, Any] = NUMBERS) -> None:
    mcfg = {**cfg["model"], "vocab_size": cfg["tokenizer"]["vocab_size"]}
    fake_tokenizer(art.tokenizer_json(), cfg["tokenizer"]["vocab_size"])
    for corpus in {art.main, *art.convergence_corpora}:
        write_manifest(art, corpus, 2817, 28)
        for split, n in (("train", 2817 * 180), ("val", 28 * 180)):  # tokenize's meta (T1's data scale)
            write_json(art.tokens(corpus, split, "json"), {"n_tokens": n, "provenance": fake_provenance()})
    runs = art.main_runs() + [r for c in art.convergence_corpora for r in art.convergence_runs(c)]
    for corpus, v, s in dict.fromkeys(runs + art.noncausal_runs()):
        curve = fake_curve(corpus, v, s, art.epochs(corpus), numbers["final_loss"].get(corpus))
        write_csv(art.metrics_csv(corpus, v, s), curve)
        if corpus != art.main:  # a convergence run: its record, no weights (nothing reads them)
            write_model_record(art, corpus, v, s, cfg, train=cfg["train"] | {"epochs": art.epochs(corpus)})
            continue
        ev = numbers["eval"][v]
        seq = cfg["model"]["seq_len"]
        write_json(
            art.eval_json(corpus, v, s),
            fake_eval(ev["ratio"], art.seeds.index(s), ev["train_ce"], numbers["seed_step"]["eval"])
            | {"model_dir": art.model_dir(corpus, v, s), "n_val_tokens": (28 * 180 - 1) // seq * seq},
        )
        if v == NONCAUSAL:  # a pretraining control: evaluated, never fine-tuned, benched or sparsity-counted
            write_model_record(art, corpus, v, s, cfg)
            continue
        model = build_model({**mcfg, "linear": v}, seed=s)
        save_model(model, art.model_dir(corpus, v, s), {"train": cfg["train"], "variant": v, "seed": s})
        write_model_record(art, corpus, v, s, cfg)
        write_sparsity(
            art.sparsity_csv(v, s),
            sparsity_rows(model),
            numbers["sparsity"] if v == "ternary" else {"init": numbers["sparsity"]["init"]},
        )
    # the main corpus's train split (the 55x-data claim), written last: it is the number that counts
    meta = {"n_tokens": numbers["train_tokens"], "provenance": fake_provenance()}
    write_json(art.tokens(art.main, "train", "json"), meta)


def write_manifest(art: Artifacts, corpus: str, n_train: int, n_val: int) -> None:
    splits = {"train": {"n_docs": n_train}, "val": {"n_docs": n_val}}
    write_json(art.manifest(corpus), {"corpus": corpus, "splits": splits, "provenance": fake_provenance()})


def write_model_record(art: Artifacts, corpus: str, v: str, s: int, cfg: dict[str, Any], **over: Any) -> None:
    """The model folder's config.json as pretraining writes it: the model config (of ``cfg``: the
    paper's with ``paper_scale``; the claims engine reads records, never weights), the training
    settings, variant, seed, corpus and provenance; ``over`` replaces top-level entries."""
    from ternarylm.model import VARIANTS, ModelConfig

    model = ModelConfig.from_dict(
        {**cfg["model"], "vocab_size": cfg["tokenizer"]["vocab_size"], **VARIANTS[v]}
    ).to_dict()
    device = "cuda:0" if cfg["train"].get("device") != "cpu" else "cpu"
    meta = {"model": model, "train": cfg["train"], "variant": v, "seed": s, "corpus": corpus}
    meta |= {"tokenizer": art.tokenizer_json(), "provenance": fake_provenance(device)}
    write_json(art.model_file(corpus, v, s, "config.json"), meta | over)


def write_sparsity(path: str, rows: list[dict[str, Any]], spec: dict[str, Any]) -> None:
    """The sparsity CSV of a freshly built model, with ``spec["zero"]`` layers set to that zero fraction."""
    init = spec.get("init", True)
    for r in rows:
        # a built model *is* its init; without init the column stays empty (a model with no seed)
        r["frac_zero_init"] = r["frac_zero"] if init else None
        z = (spec.get("zero") or {}).get(r["layer"])
        if z is not None:
            r.update(frac_zero=z, frac_pos=(1 - z) / 2, frac_neg=(1 - z) / 2)
    write_csv(path, rows, FIELDS)


def fake_finetune(
    cfg: dict[str, Any], task: str, backbone: str, seed: int, numbers: dict[str, Any] = NUMBERS
) -> tuple[dict, list[dict]]:
    """metrics.json and curve.csv rows; ``seed`` is the seed's index in the config (the spread)."""
    bonus = {"fp32": 1.5, "scratch": -1.0}.get(backbone, 0.0)
    step = numbers["seed_step"]["finetune"] * seed
    score = {k: v + step for k, v in numbers["finetune"][backbone].items()} | {"n": 408}
    major = {**numbers["majority"], "n": 408}
    metrics = {
        "task": task,
        "variant": backbone,
        "seed": seed,
        "data_source": cfg["data_source"],
        "primary_metric": paper.TASK_METRIC[task],
        "backbone": "scratch"
        if backbone == SCRATCH
        else f"results/pretrain/tinystories/{backbone}/seed{seed}",
        "settings": {"epochs": 3, "lr": 5e-5, "batch_size": 32, "max_train_examples": None},
        "provenance": fake_provenance(),
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


def write_bench(art: Artifacts, numbers: dict[str, Any] = NUMBERS) -> None:
    for dev in art.devices:
        rows = []
        for b in numbers["bench"][dev]:
            for batch in (1, 8):
                mem = {"gpu_peak_mb": b["mem_mb"]} if dev == "cuda" else {}
                rows.append(
                    {"device": dev, "variant": b["variant"], "format": b["format"], "batch": batch}
                    | {
                        "role": b["role"] or row_role(b["format"], b["variant"], dev),
                        "weight_mb": b["weight_mb"],
                    }
                    | {"peak_rss_mb": b["mem_mb"] + 380.0, "base_rss_mb": 380.0, **mem}
                    | {"ms_per_token": b["ms"] * (1 + batch / 16), "tokens_per_s": 1000 * batch / b["ms"]}
                    | {"ms_per_token_iqr": b.get("iqr", 0.1) * b["ms"], "threads": 2}
                    | {"prompt_tokens": 16, "new_tokens": 16, "repeats": 5, **b.get("row", {})}
                )
        write_csv(art.bench_csv(dev), rows)
        env = {"device": dev, "platform": "fake", "torch": torch.__version__}
        write_json(art.bench_env(dev), env | {"provenance": fake_provenance(dev)})


def to_paper_scale(art: Artifacts, config_path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Write ``cfg`` (a paper-scale config) as the resolved config, with the tokenizer.json and
    manifests the comparability reasons read; the models stay tiny (claims read no weights)."""
    write_json(config_path, cfg)
    fake_tokenizer(art.tokenizer_json(), cfg["tokenizer"]["vocab_size"], bert=True)
    for corpus in {art.main, *art.convergence_corpora}:
        write_manifest(art, corpus, 60000, 2000)
    seq = cfg["model"]["seq_len"]
    for corpus, v, s in dict.fromkeys(art.main_runs() + art.noncausal_runs() + _conv_runs(art)):
        write_model_record(art, corpus, v, s, cfg)
        if corpus == art.main:  # the evaluation over the whole validation split at the paper's seq_len
            path = art.eval_json(corpus, v, s)
            ev = json.loads(Path(path).read_text())
            write_json(path, ev | {"n_val_tokens": (28 * 180 - 1) // seq * seq})
    return cfg


def _backbone(art: Artifacts, backbone: str, seed: int) -> str:
    return SCRATCH if backbone == SCRATCH else art.model_dir(art.main, backbone, seed)


def _conv_runs(art: Artifacts) -> list[tuple[str, str, int]]:
    return [r for c in art.convergence_corpora for r in art.convergence_runs(c)]


def make_fake_results(
    root: Path, overrides: dict | None = None, numbers: dict | None = None, paper_scale: bool = False
) -> Path:
    """Write a resolved config + every artifact the notebooks read under ``root``; return the config path.

    The config is config.yaml + ``FAKE`` (+ ``PAPER_SCALE`` with ``paper_scale``) + ``overrides``;
    the files are always written with ``FAKE``'s tiny model and vocabulary.
    """
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg = merge(merge(merge(base, FAKE), PAPER_SCALE if paper_scale else {}), overrides or {})
    cfg["results_dir"] = str(root)
    tiny = merge(cfg, {k: FAKE[k] for k in ("model", "tokenizer")}) if paper_scale else cfg
    nums = merge(NUMBERS, numbers or {})
    art = Artifacts(root, tiny)
    config_path = root / "config.resolved.json"
    write_json(config_path, tiny)
    write_pretraining(art, tiny, nums)
    for task in art.tasks:
        for backbone in art.backbones:
            for i, s in enumerate(art.seeds):
                metrics, curve = fake_finetune(cfg, task, backbone, i, nums)  # the spread: seed index
                write_json(
                    art.finetune_file(task, backbone, s, "metrics.json"),
                    metrics | {"seed": s, "backbone": _backbone(art, backbone, s)},
                )
                write_csv(art.finetune_file(task, backbone, s, "curve.csv"), curve, CURVE_FIELDS)
    write_bench(art, nums)
    if paper_scale:
        to_paper_scale(art, config_path, cfg)
    return config_path
