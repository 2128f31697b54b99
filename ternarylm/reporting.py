"""Shared helpers of the report notebooks: artifact paths and loading, mean ± std, claim verdicts.

Every number that is not computed from an artifact lives in :data:`PAPER` (values of the TernaryLM
paper and of the works it compares with, each with its source) or :data:`TOLERANCE` (how close
counts as "reproduced"). The notebooks only call the functions here and :mod:`ternarylm.figures`.

A missing artifact raises :class:`FileNotFoundError` naming the file; a stage that the config does
not run (a fine-tuning task, a convergence corpus, a benchmark device) is reported as "not run".
Nothing here imports torch: the report environment has none.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ternarylm.io import load_config, write_csv

# --- cited values -------------------------------------------------------------------------------

ABSTRACT = "TernaryLM paper (Nargund & Shukla, arXiv 2602.07374 v2), abstract"
PAPER_TEXT = "as stated in the TernaryLM paper (arXiv 2602.07374)"
SEED_README = "TernaryLM GitHub README (1nisharg/TernaryLM-Memory-Efficient-Language-Modeling)"
SANH = "Sanh et al. 2019, DistilBERT (arXiv 1910.01108), Table 1: GLUE dev sets, medians of 5 runs"


@dataclass(frozen=True)
class Cited:
    value: Any
    source: str
    note: str = ""


PAPER: dict[str, Cited] = {
    "val_ppl": Cited(58.42, ABSTRACT, "TinyStories validation perplexity of the ternary model"),
    "val_ppl_std": Cited(0.17, ABSTRACT, "cross-seed standard deviation"),
    "loss_ratio": Cited({"ternary": 1.05, "fp32": 3.51}, ABSTRACT, "train/val ratio"),
    "mrpc_f1": Cited(82.47, ABSTRACT, "MRPC F1, 'surpassing DistilBERT'"),
    "sst2_acc": Cited(88.92, SEED_README, "SST-2 accuracy"),
    "cola_mcc": Cited(47.23, SEED_README, "CoLA MCC x 100"),
    "memory_mb": Cited(
        {"fp32": 1197, "int8": 612, "ternary": 498},
        f"{ABSTRACT} (498, 1,197); {SEED_README} (612)",
        "GPU inference memory; the README labels the FP32 and INT8 rows 'BERT-Base'",
    ),
    "memory_reduction": Cited(2.4, ABSTRACT, "498 MB vs 1,197 MB"),
    "latency_ms": Cited({"fp32": 9.52, "int8": 8.21, "ternary": 9.41}, SEED_README, "per-token latency, GPU"),
    "final_loss": Cited(
        {"tinystories": 4.32, "writingprompts": 4.61, "shakespeare": 4.70},
        f"{PAPER_TEXT}, convergence figure",
        "final training loss (label-smoothed CE) after 15 epochs",
    ),
    "sparsity_pct": Cited(
        {"Emb": 35, "L1": 48, "L2": 52, "L3": 54, "L4": 55, "L5": 60, "L6": 62}
        | {"L7": 61, "L8": 60, "L9": 58, "L10": 52, "L11": 48, "L12": 45},
        f"{PAPER_TEXT}, layer-wise sparsity figure",
        "percent of zero ternary weights",
    ),
    "sparsity_middle": Cited(
        {"layers": ["L5", "L6", "L7", "L8", "L9"], "range_pct": [60, 62]}, ABSTRACT, "middle layers"
    ),
    "sparsity_boundary": Cited({"range_pct": [45, 55]}, ABSTRACT, "boundary layers"),
    "setup": Cited(
        {
            "params_m": 132,
            "d_model": 768,
            "n_layers": 12,
            "n_heads": 12,
            "vocab_size": 30522,
            "corpus": "tinystories",
            "train_docs": 60000,
            "epochs": 15,
        },
        f"{ABSTRACT} (132M parameters); {PAPER_TEXT} (architecture, 60k TinyStories stories, 15 epochs)",
    ),
}

# Rows of T4/T5 cited from other work (never measured here). metric None: the table does not say.
CITED_GLUE: list[dict[str, Any]] = [
    {"model": "BERT-base", "task": "mrpc", "metric": "f1", "value": 84.98, "source": SEED_README},
    {"model": "BERT-base", "task": "sst2", "metric": "accuracy", "value": 92.43, "source": SEED_README},
    {"model": "BERT-base", "task": "cola", "metric": "mcc", "value": 56.78, "source": SEED_README},
    {"model": "BERT-base", "task": "mrpc", "metric": None, "value": 88.6, "source": SANH},
    {"model": "BERT-base", "task": "sst2", "metric": "accuracy", "value": 92.7, "source": SANH},
    {"model": "BERT-base", "task": "cola", "metric": "mcc", "value": 56.3, "source": SANH},
    {"model": "DistilBERT", "task": "mrpc", "metric": None, "value": 87.5, "source": SANH},
    {"model": "DistilBERT", "task": "sst2", "metric": "accuracy", "value": 91.3, "source": SANH},
    {"model": "DistilBERT", "task": "cola", "metric": "mcc", "value": 51.3, "source": SANH},
]
DISTILBERT_MRPC = next(r for r in CITED_GLUE if r["model"] == "DistilBERT" and r["task"] == "mrpc")

# How close counts as "reproduced" (our choices, not the paper's).
TOLERANCE: dict[str, float] = {
    "ppl_rel": 0.05,  # perplexity within 5 % of the paper's value
    "metric_abs": 2.0,  # GLUE metric within 2 points
    "ratio_rel": 0.10,  # train/val loss ratio within 10 %
    "loss_rel": 0.05,  # final convergence loss within 5 %
    "sparsity_pp": 2.0,  # zero fraction within 2 percentage points of the paper's range
    "memory_rel": 0.10,  # memory reduction at least 90 % of the paper's factor
    "latency_rel": 0.10,  # parity: ternary ms/token at most 10 % above fp32
}

TASK_METRIC = {"mrpc": "f1", "sst2": "accuracy", "cola": "mcc"}
TASK_NAMES = {"mrpc": "MRPC", "sst2": "SST-2", "cola": "CoLA"}
METRIC_NAMES = {"f1": "F1", "accuracy": "accuracy", "mcc": "MCC"}
CORPUS_NAMES = {
    "tinystories": "TinyStories",
    "writingprompts": "WritingPrompts",
    "shakespeare": "Shakespeare",
    "synthetic": "synthetic",
}
VARIANT_NAMES = {"ternary": "Ternary", "fp32": "FP32"}

REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
NOT_COMPARABLE, NOT_RUN = "not comparable", "not run"

NOTEBOOKS = ("pretraining", "finetuning", "efficiency", "sparsity", "claims")
# what each notebook writes: results/tables/{name}.csv and results/figures/{name}.{png,pdf}
# (workflow/rules/report.smk declares the same lists)
NOTEBOOK_TABLES = {
    "pretraining": ["t1_model_config", "t2_val_ppl", "t3_loss_ratio", "f1_final_loss"],
    "finetuning": ["t4_mrpc", "t5_glue_extras", "finetune_runs"],
    "efficiency": ["t6_efficiency", "bench_all"],
    "sparsity": ["f2_sparsity_layers", "f2_sparsity_modules"],
    "claims": [],
}
NOTEBOOK_FIGURES = {
    "pretraining": ["f1_convergence", "f3_train_val_loss"],
    "finetuning": ["finetune_curves"],  # only when finetune.tasks is not empty
    "efficiency": ["t6_efficiency"],
    "sparsity": ["f2_sparsity", "f2_sparsity_modules"],
    "claims": [],
}

# --- mean ± std ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (ddof=1; NaN for one value) and count of finite values."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not xs:
            return cls(math.nan, math.nan, 0)
        mean = sum(xs) / len(xs)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else math.nan
        return cls(mean, std, len(xs))

    def fmt(self, digits: int = 2, unit: str = "") -> str:
        if self.n == 0:
            return NOT_RUN
        if self.n == 1:
            return f"{self.mean:.{digits}f}{unit} (n=1)"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}{unit}"

    def scaled(self, k: float) -> Stat:
        return Stat(self.mean * k, self.std * abs(k), self.n)


def aggregate(df: pd.DataFrame, by: str | Sequence[str], cols: Sequence[str]) -> pd.DataFrame:
    """Per group of ``by``: ``{col}_mean``, ``{col}_std`` (ddof=1) and ``n`` (rows in the group)."""
    by = [by] if isinstance(by, str) else list(by)
    out = []
    for key, g in df.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        for c in cols:
            s = Stat.of(g[c].tolist())
            row[f"{c}_mean"], row[f"{c}_std"] = s.mean, s.std
        row["n"] = len(g)
        out.append(row)
    return pd.DataFrame(out)


# --- artifacts ----------------------------------------------------------------------------------


def require(path: str | Path, what: str = "artifact") -> Path:
    """``path`` if it exists, else FileNotFoundError naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing {what}: {path}")
    return path


class Artifacts:
    """Paths and readers of everything under the results folder, for one resolved config."""

    def __init__(self, results_dir: str | Path, config: dict[str, Any]) -> None:
        self.root = Path(results_dir)
        self.cfg = config
        self.main = config["main_corpus"]
        self.variants: list[str] = list(config["variants"])
        self.seeds: list[int] = [int(s) for s in config["seeds"]]

    @classmethod
    def from_config_file(cls, config_path: str | Path, results_dir: str | Path | None = None) -> Artifacts:
        cfg = load_config(require(config_path, "config"))
        return cls(results_dir if results_dir is not None else cfg["results_dir"], cfg)

    # paths (the layout of design.md §3)
    def run_dir(self, corpus: str, variant: str, seed: int) -> Path:
        return self.root / "pretrain" / corpus / variant / f"seed{seed}"

    def metrics_csv(self, corpus: str, variant: str, seed: int) -> Path:
        return self.run_dir(corpus, variant, seed) / "metrics.csv"

    def eval_json(self, corpus: str, variant: str, seed: int) -> Path:
        return self.root / "eval" / corpus / variant / f"seed{seed}.json"

    def manifest(self, corpus: str) -> Path:
        return self.root / "data" / corpus / "manifest.json"

    def finetune_dir(self, task: str, variant: str, seed: int) -> Path:
        return self.root / "finetune" / task / variant / f"seed{seed}"

    def bench_csv(self, device: str) -> Path:
        return self.root / "bench" / device / "results.csv"

    def bench_env(self, device: str) -> Path:
        return self.root / "bench" / device / "env.json"

    def sparsity_csv(self, variant: str, seed: int) -> Path:
        return self.root / "sparsity" / variant / f"seed{seed}.csv"

    # what the config runs
    @property
    def tasks(self) -> list[str]:
        return list((self.cfg.get("finetune") or {}).get("tasks") or [])

    @property
    def devices(self) -> list[str]:
        return list((self.cfg.get("bench") or {}).get("devices") or [])

    @property
    def convergence_corpora(self) -> list[str]:
        return list(self.cfg.get("convergence_corpora") or [])

    def main_runs(self) -> list[tuple[str, str, int]]:
        return [(self.main, v, s) for v in self.variants for s in self.seeds]

    def convergence_runs(self, corpus: str) -> list[tuple[str, str, int]]:
        """F1's runs on ``corpus`` (the main corpus reuses its main runs), [] if not configured."""
        if corpus not in self.convergence_corpora:
            return []
        conv = self.cfg.get("convergence") or {}
        variants = conv.get("variants", self.variants)
        seeds = conv.get("seeds", self.seeds)
        return [(corpus, v, int(s)) for v in variants for s in seeds]

    def epochs(self, corpus: str) -> int:
        if corpus == self.main:
            return int(self.cfg["train"]["epochs"])
        return int((self.cfg.get("convergence") or {}).get("epochs", self.cfg["train"]["epochs"]))

    # inputs of each notebook (report.py checks them before executing; report.smk mirrors this)
    def inputs(self, notebook: str) -> list[Path]:
        if notebook not in NOTEBOOKS:
            raise ValueError(f"unknown notebook {notebook!r}; choose one of {', '.join(NOTEBOOKS)}")
        main = self.main_runs()
        conv = [r for c in self.convergence_corpora for r in self.convergence_runs(c)]
        first = [(self.main, v, self.seeds[0]) for v in self.variants]
        paths: list[Path] = []
        if notebook in ("pretraining", "claims"):
            paths += [self.eval_json(*r) for r in main]
            paths += [self.metrics_csv(*r) for r in main]
            paths += [self.metrics_csv(*r) for r in conv if r not in main]
            paths += [self.manifest(c) for c in dict.fromkeys([self.main, *self.convergence_corpora])]
        if notebook == "pretraining":
            paths += [self.run_dir(*r) / f for r in first for f in ("config.json", "model.safetensors")]
        if notebook in ("finetuning", "claims"):
            for t in self.tasks:
                for v, s in ((v, s) for v in self.variants for s in self.seeds):
                    paths.append(self.finetune_dir(t, v, s) / "metrics.json")
                    if notebook == "finetuning":
                        paths.append(self.finetune_dir(t, v, s) / "curve.csv")
        if notebook in ("efficiency", "claims"):
            paths += [self.bench_csv(d) for d in self.devices]
            if notebook == "efficiency":
                paths += [self.bench_env(d) for d in self.devices]
        if notebook in ("sparsity", "claims"):
            paths += [self.sparsity_csv(v, s) for v in self.variants for s in self.seeds]
        return list(dict.fromkeys(paths))

    def outputs(self, notebook: str, tables_dir: Path, figures_dir: Path) -> list[Path]:
        """Tables and figures ``notebook`` writes (claims.csv is not included)."""
        figs = NOTEBOOK_FIGURES[notebook] if notebook != "finetuning" or self.tasks else []
        return [tables_dir / f"{t}.csv" for t in NOTEBOOK_TABLES[notebook]] + [
            figures_dir / f"{f}.{ext}" for f in figs for ext in ("png", "pdf")
        ]

    def missing(self, notebook: str) -> list[Path]:
        return [p for p in self.inputs(notebook) if not p.exists()]

    # readers
    def read_json(self, path: Path) -> dict[str, Any]:
        require(path)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e

    def read_csv(self, path: Path, columns: Sequence[str] = ()) -> pd.DataFrame:
        require(path)
        df = pd.read_csv(path)
        if df.empty:
            raise ValueError(f"{path}: no rows")
        lacking = [c for c in columns if c not in df.columns]
        if lacking:
            raise ValueError(f"{path}: missing column(s) {lacking}; has {list(df.columns)}")
        return df

    def eval_table(self) -> pd.DataFrame:
        """One row per main run: the evaluate JSON plus corpus/variant/seed."""
        rows = []
        for corpus, v, s in self.main_runs():
            d = self.read_json(self.eval_json(corpus, v, s))
            rows.append({"corpus": corpus, "variant": v, "seed": s, **d})
        return pd.DataFrame(rows)

    def metrics(self, corpus: str, variant: str, seed: int) -> pd.DataFrame:
        cols = ("step", "epoch", "train_loss", "val_loss")
        df = self.read_csv(self.metrics_csv(corpus, variant, seed), cols)
        df = df.apply(pd.to_numeric, errors="coerce")
        return df.assign(corpus=corpus, variant=variant, seed=seed)

    def n_train_docs(self, corpus: str) -> int | None:
        """Training documents actually prepared (``manifest.json``), None if it does not say."""
        path = self.manifest(corpus)
        if not path.exists():
            return None
        n = (self.read_json(path).get("splits") or {}).get("train", {}).get("n_docs")
        return int(n) if n is not None else None

    def finetune_metrics(self, task: str, variant: str, seed: int) -> dict[str, Any]:
        return self.read_json(self.finetune_dir(task, variant, seed) / "metrics.json")

    def finetune_curve(self, task: str, variant: str, seed: int) -> pd.DataFrame:
        df = self.read_csv(self.finetune_dir(task, variant, seed) / "curve.csv", ("epoch",))
        return df.assign(task=task, variant=variant, seed=seed)

    def bench(self, device: str) -> pd.DataFrame:
        path = self.bench_csv(device)
        return normalize_bench(self.read_csv(path), path).assign(device=device)

    def bench_environment(self, device: str) -> dict[str, Any]:
        return self.read_json(self.bench_env(device))

    def sparsity(self, variant: str, seed: int) -> pd.DataFrame:
        cols = (
            "layer",
            "layer_index",
            "module",
            "quantized",
            "frac_zero",
            "frac_pos",
            "frac_neg",
            "n_weights",
        )
        df = self.read_csv(self.sparsity_csv(variant, seed), cols)
        df["quantized"] = df["quantized"].astype(str).str.lower().isin(["true", "1"])
        return df.assign(variant=variant, seed=seed)


# --- tables: pretraining (T1, T2, T3, F1, F3) -----------------------------------------------------


def safetensors_shapes(path: str | Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header (no torch needed)."""
    path = require(path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def param_counts(shapes: dict[str, list[int]], model_cfg: dict[str, Any], variant: str) -> dict[str, int]:
    """Total / ternary / full-precision parameter counts of a saved twin."""
    quantize = set(model_cfg.get("quantize", []))
    total = ternary = 0
    for name, shape in shapes.items():
        n = math.prod(shape)
        total += n
        proj = name.rsplit(".", 2)[-2] if name.endswith(".weight") else ""
        if variant == "ternary" and ".layers." in f".{name}" and proj in quantize:
            ternary += n
    return {"total": total, "ternary": ternary, "full_precision": total - ternary}


def t1_model_config(art: Artifacts) -> pd.DataFrame:
    """T1: model/training configuration of each twin (first seed) beside the paper's."""
    setup = PAPER["setup"].value
    cols: dict[str, dict[str, Any]] = {}
    for corpus, v, s in ((art.main, v, art.seeds[0]) for v in art.variants):
        run = art.run_dir(corpus, v, s)
        meta = art.read_json(run / "config.json")
        m, t = meta["model"], meta.get("train") or art.cfg["train"]
        counts = param_counts(safetensors_shapes(run / "model.safetensors"), m, v)
        cols[VARIANT_NAMES.get(v, v)] = {
            "parameters (M)": round(counts["total"] / 1e6, 2),
            "ternary parameters (M)": round(counts["ternary"] / 1e6, 2),
            "full-precision parameters (M)": round(counts["full_precision"] / 1e6, 2),
            "d_model": m["d_model"],
            "layers": m["n_layers"],
            "heads": m["n_heads"],
            "FFN hidden (SwiGLU)": m["ffn_hidden"],
            "vocab": m["vocab_size"],
            "sequence length": m["seq_len"],
            "dropout": m["dropout"],
            "ternary projections": ", ".join(m["quantize"]) if v == "ternary" else "none",
            "activations": f"{m['act_bits']}-bit absmax per token" if v == "ternary" else "fp32",
            "embedding / LM head": "full precision, untied, no biases",
            "optimizer": f"AdamW betas {tuple(t['betas'])}, lr {t['lr']}, wd {t['weight_decay']}",
            "schedule": f"OneCycle, {t['warmup_frac']:.0%} warm-up",
            "label smoothing": t["label_smoothing"],
            "batch (sequences)": t["batch_size"],
            "epochs": t["epochs"]
            if not t.get("max_steps")
            else f"{t['epochs']} (capped at {t['max_steps']} steps)",
            "corpus": corpus,
            "train documents": art.n_train_docs(corpus),
        }
    paper = {
        "parameters (M)": setup["params_m"],
        "d_model": setup["d_model"],
        "layers": setup["n_layers"],
        "heads": setup["n_heads"],
        "vocab": setup["vocab_size"],
        "epochs": setup["epochs"],
        "corpus": setup["corpus"],
        "train documents": setup["train_docs"],
    }
    df = pd.DataFrame(cols)
    df["paper"] = [paper.get(k, "") for k in df.index]
    df.index.name = "setting"
    return df.reset_index().astype(str)


def t2_val_ppl(art: Artifacts) -> pd.DataFrame:
    """T2: validation perplexity per twin, plain CE and label-smoothed, mean ± std over seeds."""
    ev = art.eval_table()
    rows = []
    for v in art.variants:
        g = ev[ev["variant"] == v]
        plain, smooth = Stat.of(g["val_ppl"]), Stat.of(g["val_ppl_smoothed"])
        paper = PAPER["val_ppl"].value if v == "ternary" else None
        rows.append(
            {
                "variant": v,
                "corpus": art.main,
                "val_ppl_mean": plain.mean,
                "val_ppl_std": plain.std,
                "val_ppl_smoothed_mean": smooth.mean,
                "val_ppl_smoothed_std": smooth.std,
                "n_seeds": plain.n,
                "val_ppl": plain.fmt(),
                "val_ppl_smoothed": smooth.fmt(),
                "paper_val_ppl": f"{paper} ± {PAPER['val_ppl_std'].value}" if paper else "not reported",
            }
        )
    return pd.DataFrame(rows)


def t3_loss_ratio(art: Artifacts) -> pd.DataFrame:
    """T3: val/train loss ratio per twin (label-smoothed and plain), mean ± std over seeds."""
    ev = art.eval_table()
    rows = []
    for v in art.variants:
        g = ev[ev["variant"] == v]
        stats = {k: Stat.of(g[k]) for k in ("train_ce", "val_ce", "loss_ratio", "loss_ratio_smoothed")}
        rows.append(
            {
                "variant": v,
                **{f"{k}_mean": s.mean for k, s in stats.items()},
                **{f"{k}_std": s.std for k, s in stats.items()},
                "n_seeds": stats["loss_ratio"].n,
                "loss_ratio_smoothed": stats["loss_ratio_smoothed"].fmt(3),
                "loss_ratio": stats["loss_ratio"].fmt(3),
                "paper_ratio": PAPER["loss_ratio"].value.get(v),
            }
        )
    return pd.DataFrame(rows)


def epoch_means(df: pd.DataFrame, col: str = "train_loss") -> pd.DataFrame:
    """Per-epoch average of ``col`` (rows weighted by the steps they cover), epochs 1, 2, ...

    ``metrics.csv`` logs ``epoch = step / steps_per_epoch`` and the mean training loss since the
    previous row, so epoch k averages the rows with epoch in (k-1, k] — the "average loss of
    epoch k" the paper's convergence figure plots.
    """
    d = df[["step", "epoch", col]].dropna().sort_values("step")
    if d.empty:
        raise ValueError(f"no {col} values")
    w = d["step"].diff().fillna(d["step"].iloc[0])
    k = d["epoch"].map(lambda e: max(1, math.ceil(e - 1e-9)))
    sums = (d[col] * w).groupby(k).sum() / w.groupby(k).sum()
    return pd.DataFrame({"epoch": sums.index.astype(int), col: sums.to_numpy()})


def convergence(art: Artifacts) -> tuple[pd.DataFrame, pd.DataFrame]:
    """F1: (per-epoch training loss per corpus/variant/seed, final-loss table incl. not-run corpora)."""
    curves, finals = [], []
    paper = PAPER["final_loss"].value
    for corpus in dict.fromkeys([*paper, *art.convergence_corpora]):
        runs = art.convergence_runs(corpus)
        by_variant: dict[str, list[float]] = {}
        for c, v, s in runs:
            e = epoch_means(art.metrics(c, v, s))
            curves.append(e.assign(corpus=c, variant=v, seed=s))
            by_variant.setdefault(v, []).append(float(e["train_loss"].iat[-1]))
        for v, last in (by_variant or {"ternary": []}).items():
            stat = Stat.of(last)
            finals.append(
                {
                    "corpus": corpus,
                    "variant": v,
                    "paper_final_loss": paper.get(corpus),
                    "final_loss_mean": stat.mean,
                    "final_loss_std": stat.std,
                    "n_seeds": stat.n,
                    "epochs": art.epochs(corpus) if runs else None,
                    "final_loss": stat.fmt(3) if runs else f"{NOT_RUN} (not in convergence_corpora)",
                }
            )
    curve_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    return curve_df, pd.DataFrame(finals)


def convergence_steps(art: Artifacts) -> pd.DataFrame:
    """Every logged metrics row of the F1 runs (for the fine-grained curves)."""
    runs = [r for c in art.convergence_corpora for r in art.convergence_runs(c)]
    return pd.concat([art.metrics(*r) for r in runs], ignore_index=True) if runs else pd.DataFrame()


def not_run_corpora(art: Artifacts) -> list[str]:
    """Paper corpora of F1 that the config does not run."""
    return [c for c in PAPER["final_loss"].value if c not in art.convergence_corpora]


def train_val_curves(art: Artifacts) -> pd.DataFrame:
    """F3: train/val loss per logged step for every main run (long format)."""
    return pd.concat([art.metrics(*r) for r in art.main_runs()], ignore_index=True)


# --- tables: fine-tuning (T4, T5) -----------------------------------------------------------------


def finetune_table(art: Artifacts) -> pd.DataFrame:
    """One row per task x variant x seed x split: accuracy, F1, MCC and the majority baseline."""
    rows = []
    for t in art.tasks:
        for v in art.variants:
            for s in art.seeds:
                m = art.finetune_metrics(t, v, s)
                for split in ("dev", "test"):
                    got = m.get(split)
                    if not got:
                        continue
                    base = (m.get("majority") or {}).get(split) or {}
                    row = {
                        "task": t,
                        "variant": v,
                        "seed": s,
                        "split": split,
                        "data_source": m.get("data_source"),
                    }
                    for k in ("accuracy", "f1", "mcc"):
                        row[k] = got.get(k)
                        row[f"majority_{k}"] = base.get(k)
                    rows.append(row)
    cols = ["task", "variant", "seed", "split", "data_source"]
    cols += [f"{p}{k}" for k in ("accuracy", "f1", "mcc") for p in ("", "majority_")]
    return pd.DataFrame(rows, columns=cols)


def glue_table(art: Artifacts, tasks: Sequence[str], ft: pd.DataFrame | None = None) -> pd.DataFrame:
    """T4/T5: ours (mean ± std per variant), the measured majority baseline and cited rows."""
    ft = finetune_table(art) if ft is None else ft
    rows = []
    for t in tasks:
        metrics = ["f1", "accuracy"] if t == "mrpc" else [TASK_METRIC[t]]
        if t not in art.tasks:
            rows.append(
                {"task": t, "model": "TernaryLM (ours)", "kind": NOT_RUN, "note": "not in finetune.tasks"}
            )
            continue
        for split in ("dev", "test"):
            g = ft[(ft["task"] == t) & (ft["split"] == split)]
            if g.empty:
                continue
            for v in art.variants:
                gv = g[g["variant"] == v]
                row = {
                    "task": t,
                    "split": split,
                    "model": f"{VARIANT_NAMES[v]} twin (ours)",
                    "kind": "measured",
                }
                for k in metrics:
                    st = Stat.of(gv[k])
                    row[k], row[f"{k}_mean"], row[f"{k}_std"], row["n_seeds"] = (
                        st.fmt(),
                        st.mean,
                        st.std,
                        st.n,
                    )
                rows.append(row)
            base = {"task": t, "split": split, "model": "majority class", "kind": "measured"}
            for k in metrics:
                st = Stat.of(g[f"majority_{k}"])
                base[k], base[f"{k}_mean"] = f"{st.mean:.2f}", st.mean
            rows.append(base)
        paper_key = {"mrpc": "mrpc_f1", "sst2": "sst2_acc", "cola": "cola_mcc"}[t]
        c = PAPER[paper_key]
        rows.append(
            {
                "task": t,
                "split": "",
                "model": "TernaryLM (paper)",
                "kind": "cited",
                TASK_METRIC[t]: f"{c.value}",
                f"{TASK_METRIC[t]}_mean": c.value,
                "source": c.source,
                "note": "split not stated",
            }
        )
        for r in (r for r in CITED_GLUE if r["task"] == t):
            metric = r["metric"] or TASK_METRIC[t]
            note = "" if r["metric"] else "metric not named in the table (GLUE reports F1/accuracy for MRPC)"
            rows.append(
                {
                    "task": t,
                    "split": "dev",
                    "model": r["model"],
                    "kind": "cited",
                    metric: f"{r['value']}",
                    f"{metric}_mean": r["value"],
                    "source": r["source"],
                    "note": note,
                }
            )
    cols = ["task", "split", "model", "kind", "f1", "accuracy", "mcc", "n_seeds", "source", "note"]
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in cols]
    return df.reindex(columns=[*cols, *extra])


def finetune_curves(art: Artifacts) -> pd.DataFrame:
    frames = [art.finetune_curve(t, v, s) for t in art.tasks for v in art.variants for s in art.seeds]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --- tables: efficiency (T6) ------------------------------------------------------------------------

BENCH_COLUMNS = ("variant", "format", "batch", "weight_mb", "ms_per_token")


def normalize_bench(df: pd.DataFrame, path: str | Path = "bench results") -> pd.DataFrame:
    """Check the bench columns (see ternarylm.bench), make numbers numeric, add ``runtime``.

    ``runtime`` is the part of the format before the first dash (``torch``, ``gguf``), so twins are
    compared within one runtime.
    """
    lacking = [c for c in BENCH_COLUMNS if c not in df.columns]
    if lacking:
        raise ValueError(f"{path}: missing column(s) {lacking}; has {list(df.columns)}")
    out = df.copy()
    for c in ("batch", "weight_mb", "peak_rss_mb", "base_rss_mb", "ms_per_token", "tokens_per_s"):
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce")
    out["variant"] = out["variant"].astype(str)
    out["format"] = out["format"].astype(str)
    out["runtime"] = out["format"].str.split("-").str[0]
    if {"peak_rss_mb", "base_rss_mb"} <= set(out.columns):
        out["process_mb"] = out["peak_rss_mb"] - out["base_rss_mb"]
    return out


def pick_rows(bench: pd.DataFrame) -> dict[str, pd.Series | None]:
    """The rows that stand for the paper's Ternary, FP32 and INT8 columns, at the smallest batch.

    Ternary: the ternary twin's format with the smallest weights (its deployed form). FP32 and INT8:
    the fp32 twin in the same runtime at 32 / 8 bits (else torch), so latency compares like with like.
    """
    b = bench[bench["batch"] == bench["batch"].min()]
    tern = b[b["variant"] == "ternary"].sort_values("weight_mb")
    runtime = tern["runtime"].iat[0] if not tern.empty else "torch"
    fp = b[b["variant"] == "fp32"]

    def first(pattern: str) -> pd.Series | None:
        for rt in dict.fromkeys([runtime, "torch"]):
            hit = fp[(fp["runtime"] == rt) & fp["format"].str.contains(pattern, regex=True)]
            if not hit.empty:
                return hit.iloc[0]
        return None

    return {
        "fp32": first(r"fp32|f32"),
        "int8": first(r"int8|q8"),
        "ternary": tern.iloc[0] if not tern.empty else None,
    }


def t6_efficiency(art: Artifacts) -> pd.DataFrame:
    """T6: the paper's FP32 / INT8 / Ternary memory and latency beside ours on each bench device.

    Our memory is ``weight_mb`` (bytes of the weights in that format); ``process_mb`` (peak RSS
    above the process baseline) is given beside it. The paper's numbers are GPU inference memory.
    """
    rows = []
    mem, lat = PAPER["memory_mb"].value, PAPER["latency_ms"].value
    for k in ("fp32", "int8", "ternary"):
        rows.append({"device": "paper (GPU)", "column": k, "memory_mb": mem[k], "ms_per_token": lat[k]})
    for d in art.devices:
        for k, r in pick_rows(art.bench(d)).items():
            if r is None:
                rows.append({"device": d, "column": k, "format": NOT_RUN})
                continue
            rows.append(
                {
                    "device": d,
                    "column": k,
                    "variant": r["variant"],
                    "format": r["format"],
                    "batch": r["batch"],
                    "memory_mb": r["weight_mb"],
                    "process_mb": r.get("process_mb"),
                    "ms_per_token": r["ms_per_token"],
                }
            )
    cols = ["device", "column", "variant", "format", "batch", "memory_mb", "process_mb", "ms_per_token"]
    return pd.DataFrame(rows).reindex(columns=cols)


def bench_all(art: Artifacts) -> pd.DataFrame:
    """Every benchmark row of every configured device."""
    frames = [art.bench(d) for d in art.devices]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --- tables: sparsity (F2) ---------------------------------------------------------------------------


def sparsity_long(art: Artifacts) -> pd.DataFrame:
    return pd.concat([art.sparsity(v, s) for v in art.variants for s in art.seeds], ignore_index=True)


def sparsity_layers(sp: pd.DataFrame) -> pd.DataFrame:
    """F2 table: zero % per layer (embedding + pooled blocks) per variant, mean ± std, paper %."""
    d = sp[(sp["module"] == "all") | (sp["layer"] == "Emb")].copy()
    d["zero_pct"] = 100 * d["frac_zero"]
    agg = aggregate(d, ["variant", "layer", "layer_index", "quantized"], ["zero_pct"])
    paper = agg["layer"].map(PAPER["sparsity_pct"].value)
    agg["paper_zero_pct"] = paper.where(agg["variant"] == "ternary")  # the paper's values are ternary
    order = agg["variant"].map(lambda v: (v != "ternary", v))
    return agg.assign(_o=order).sort_values(["_o", "layer_index"]).drop(columns="_o").reset_index(drop=True)


def sparsity_modules(sp: pd.DataFrame) -> pd.DataFrame:
    d = sp[(sp["module"] != "all") & (sp["layer"] != "Emb")].copy()
    for k in ("frac_zero", "frac_pos", "frac_neg"):
        d[k.replace("frac_", "") + "_pct"] = 100 * d[k]
    return aggregate(
        d, ["variant", "layer", "layer_index", "module"], ["zero_pct", "pos_pct", "neg_pct", "alpha"]
    )


# --- comparability and verdicts ------------------------------------------------------------------


def model_reasons(cfg: dict[str, Any]) -> list[str]:
    """Why the configured model is not the paper's (empty if it is)."""
    setup, m = PAPER["setup"].value, cfg["model"]
    vocab = (cfg.get("tokenizer") or {}).get("vocab_size")
    diffs = [
        f"{k}={got} (paper {setup[k]})"
        for k, got in (("d_model", m["d_model"]), ("n_layers", m["n_layers"]), ("n_heads", m["n_heads"]))
        if got != setup[k]
    ]
    if vocab is not None and vocab != setup["vocab_size"]:
        diffs.append(f"vocab_size={vocab} (paper {setup['vocab_size']})")
    return [f"smaller/different model: {', '.join(diffs)}"] if diffs else []


def data_reasons(art: Artifacts, corpus: str) -> list[str]:
    setup, cfg = PAPER["setup"].value, art.cfg
    if cfg.get("data_source") == "synthetic" or corpus == "synthetic":
        return [f"synthetic offline corpus ({corpus}), not the paper's data"]
    reasons = []
    if corpus == art.main and corpus != setup["corpus"]:
        reasons.append(f"main corpus {corpus} (paper {setup['corpus']})")
    if corpus in ("tinystories", "writingprompts"):
        n = art.n_train_docs(corpus)
        if n is None:
            n = ((cfg.get("corpora") or {}).get(corpus) or {}).get("max_train_docs")
        if n is not None and n < setup["train_docs"]:
            reasons.append(f"{n} {corpus} training documents (paper {setup['train_docs']})")
    return reasons


def training_reasons(art: Artifacts, corpus: str) -> list[str]:
    setup, t = PAPER["setup"].value, art.cfg["train"]
    reasons = []
    if art.epochs(corpus) != setup["epochs"]:
        reasons.append(f"epochs={art.epochs(corpus)} (paper {setup['epochs']})")
    if t.get("max_steps"):
        reasons.append(f"capped at train.max_steps={t['max_steps']}")
    return reasons


def pretrain_reasons(art: Artifacts, corpus: str | None = None) -> list[str]:
    corpus = corpus or art.main
    return model_reasons(art.cfg) + data_reasons(art, corpus) + training_reasons(art, corpus)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str


def _judge(ok: bool, detail: str, reasons: Sequence[str]) -> Verdict:
    if reasons:
        return Verdict(NOT_COMPARABLE, "; ".join(reasons) + f" — {detail}")
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED, detail)


def judge_close(
    ours: Stat,
    paper: float,
    *,
    rel: float | None = None,
    abs_: float | None = None,
    reasons: Sequence[str] = (),
) -> Verdict:
    """Reproduced when |ours.mean - paper| <= tolerance (relative to the paper value, or absolute)."""
    if ours.n == 0:
        return Verdict(NOT_RUN, "no result")
    tol = rel * abs(paper) if rel is not None else float(abs_ or 0.0)
    diff = ours.mean - paper
    return _judge(abs(diff) <= tol, f"ours - paper = {diff:+.3g} (tolerance ±{tol:.3g})", reasons)


def judge_greater(ours: Stat, ref: float, *, what: str = "reference", reasons: Sequence[str] = ()) -> Verdict:
    """Reproduced when ours.mean > ref."""
    if ours.n == 0:
        return Verdict(NOT_RUN, "no result")
    rel = ">" if ours.mean > ref else "<="
    return _judge(ours.mean > ref, f"ours {ours.mean:.4g} {rel} {ref:.4g} ({what})", reasons)


def judge_at_most(ours: Stat, limit: float, *, what: str = "limit", reasons: Sequence[str] = ()) -> Verdict:
    """Reproduced when ours.mean <= limit."""
    if ours.n == 0:
        return Verdict(NOT_RUN, "no result")
    rel = "<=" if ours.mean <= limit else ">"
    return _judge(ours.mean <= limit, f"ours {ours.mean:.4g} {rel} {limit:.4g} ({what})", reasons)


def judge_range(ours: Stat, lo: float, hi: float, *, tol: float, reasons: Sequence[str] = ()) -> Verdict:
    """Reproduced when lo - tol <= ours.mean <= hi + tol."""
    if ours.n == 0:
        return Verdict(NOT_RUN, "no result")
    ok = lo - tol <= ours.mean <= hi + tol
    return _judge(ok, f"ours {ours.mean:.3g} vs paper range [{lo}, {hi}] (± {tol})", reasons)


# --- the claims table ----------------------------------------------------------------------------

CLAIM_FIELDS = [
    "claim",
    "paper_value",
    "ours",
    "n_seeds",
    "verdict",
    "reason",
    "source",
    "ours_mean",
    "ours_std",
]


def _row(claim: str, paper_value: str, ours: Stat | None, v: Verdict, source: str, digits: int = 2) -> dict:
    ours = ours or Stat(math.nan, math.nan, 0)
    return {
        "claim": claim,
        "paper_value": paper_value,
        "ours": ours.fmt(digits) if ours.n or v.verdict == NOT_RUN else "not computed",
        "n_seeds": ours.n,
        "verdict": v.verdict,
        "reason": v.reason,
        "source": source,
        "ours_mean": ours.mean,
        "ours_std": ours.std,
    }


def claims_pretraining(art: Artifacts) -> list[dict[str, Any]]:
    ev = art.eval_table()
    reasons = pretrain_reasons(art)
    tern, fp32 = ev[ev["variant"] == "ternary"], ev[ev["variant"] == "fp32"]
    c, std = PAPER["val_ppl"], PAPER["val_ppl_std"].value
    smooth, plain = Stat.of(tern["val_ppl_smoothed"]), Stat.of(tern["val_ppl"])
    rows = [
        _row(
            f"{CORPUS_NAMES.get(art.main, art.main)} val PPL of the ternary model, label-smoothed "
            "(exp of the training objective: the kind the paper's number is)",
            f"{c.value} ± {std}",
            smooth,
            judge_close(smooth, c.value, rel=TOLERANCE["ppl_rel"], reasons=reasons),
            c.source,
        ),
        _row(
            "same, true PPL = exp(plain CE) — shown for reference",
            f"{c.value} ± {std}",
            plain,
            Verdict(
                NOT_COMPARABLE,
                "the paper's perplexity is exp of the label-smoothed loss (smoothing "
                f"{ev['label_smoothing'].iat[0]}); plain-CE PPL is the quantity other LM papers report",
            ),
            c.source,
        ),
    ]
    ratio = PAPER["loss_ratio"]
    for v, g in (("ternary", tern), ("fp32", fp32)):
        st = Stat.of(g["loss_ratio_smoothed"])
        plain_r = Stat.of(g["loss_ratio"])
        verdict = judge_close(st, ratio.value[v], rel=TOLERANCE["ratio_rel"], reasons=reasons)
        rows.append(
            _row(
                f"val/train loss ratio, {VARIANT_NAMES[v]} (label-smoothed; plain CE: {plain_r.fmt(3)})",
                f"{ratio.value[v]}x",
                st,
                verdict,
                ratio.source,
                3,
            )
        )
    # per seed: the twins of one seed share init and data order
    by_seed = ev.pivot_table(index="seed", columns="variant", values="loss_ratio_smoothed")
    gap = (
        Stat.of((by_seed["fp32"] - by_seed["ternary"]).tolist())
        if {"fp32", "ternary"} <= set(by_seed)
        else Stat.of([])
    )
    rows.append(
        _row(
            "implicit regularization: the ternary twin overfits less (FP32 ratio - ternary ratio > 0, per seed)",
            f"{ratio.value['fp32'] - ratio.value['ternary']:.2f}",
            gap,
            judge_greater(gap, 0.0, what="no difference", reasons=reasons),
            ratio.source,
            3,
        )
    )
    return rows


def claims_finetuning(art: Artifacts) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    ft = finetune_table(art) if art.tasks else pd.DataFrame()
    reasons = pretrain_reasons(art)
    for task, key in (("mrpc", "mrpc_f1"), ("sst2", "sst2_acc"), ("cola", "cola_mcc")):
        c, metric = PAPER[key], TASK_METRIC[task]
        claim = f"{TASK_NAMES[task]} dev {METRIC_NAMES[metric]} of the ternary model"
        if task not in art.tasks:
            rows.append(
                _row(claim, f"{c.value}", None, Verdict(NOT_RUN, f"{task} not in finetune.tasks"), c.source)
            )
            continue
        g = ft[(ft["task"] == task) & (ft["split"] == "dev")]
        tern, fp32 = g[g["variant"] == "ternary"], g[g["variant"] == "fp32"]
        ours, base = Stat.of(tern[metric]), Stat.of(g[f"majority_{metric}"])
        r = list(reasons)
        if (g["data_source"] == "synthetic").any():
            r.append(f"synthetic stand-in for {TASK_NAMES[task]}")
        v = judge_close(ours, c.value, abs_=TOLERANCE["metric_abs"], reasons=r)
        extra = f"; majority-class baseline {base.mean:.2f}; FP32 twin {Stat.of(fp32[metric]).fmt()}"
        rows.append(_row(claim, f"{c.value}", ours, Verdict(v.verdict, v.reason + extra), c.source))
        if task == "mrpc":
            rows.append(
                _row(
                    "MRPC transfer is non-trivial: ternary F1 above the majority-class baseline (measured)",
                    f"{c.value} vs baseline {base.mean:.2f}",
                    ours,
                    judge_greater(ours, base.mean, what="majority-class F1", reasons=r),
                    f"{c.source}; baseline measured here",
                )
            )
            d = DISTILBERT_MRPC
            rows.append(
                _row(
                    "ternary MRPC F1 surpasses DistilBERT",
                    f"{c.value} > DistilBERT",
                    ours,
                    judge_greater(ours, d["value"], what="DistilBERT (Sanh et al. 2019)", reasons=r),
                    f"{c.source}; DistilBERT {d['value']}: {d['source']}",
                )
            )
    return rows


def claims_efficiency(art: Artifacts) -> list[dict[str, Any]]:
    mem, red, lat = PAPER["memory_mb"], PAPER["memory_reduction"], PAPER["latency_ms"]
    mem_claim = f"memory reduction FP32 -> ternary ({mem.value['fp32']} -> {mem.value['ternary']} MB)"
    lat_claim = "latency parity: ternary per-token latency / FP32's"
    paper_lat = (
        f"{lat.value['ternary']} vs {lat.value['fp32']} ms ({lat.value['ternary'] / lat.value['fp32']:.3f})"
    )
    if not art.devices:
        none = Verdict(NOT_RUN, "bench.devices is empty")
        return [
            _row(mem_claim, f"{red.value}x", None, none, red.source),
            _row(lat_claim, paper_lat, None, none, lat.source),
        ]
    device = "cuda" if "cuda" in art.devices else art.devices[0]
    picked = pick_rows(art.bench(device))
    f, t = picked["fp32"], picked["ternary"]
    if f is None or t is None:
        miss = Verdict(NOT_RUN, f"bench on {device} has no {'fp32' if f is None else 'ternary'} row")
        return [
            _row(mem_claim, f"{red.value}x", None, miss, red.source),
            _row(lat_claim, paper_lat, None, miss, lat.source),
        ]
    reasons = model_reasons(art.cfg)
    where = f"on {device}" + ("" if device == "cuda" else " (paper: GPU)")
    ratio = Stat(f["weight_mb"] / t["weight_mb"], math.nan, 1)
    floor = red.value * (1 - TOLERANCE["memory_rel"])
    v = judge_greater(
        ratio, floor, what=f"{1 - TOLERANCE['memory_rel']:.0%} of the paper's factor", reasons=reasons
    )
    detail = (
        f"; weights {where}: FP32 {f['format']} {f['weight_mb']:.1f} MB, ternary {t['format']} "
        f"{t['weight_mb']:.1f} MB"
    )
    lat_ratio = Stat(t["ms_per_token"] / f["ms_per_token"], math.nan, 1)
    lv = judge_at_most(lat_ratio, 1 + TOLERANCE["latency_rel"], what="parity limit", reasons=reasons)
    lat_detail = (
        f"; {where}: ternary {t['format']} {t['ms_per_token']:.3g} ms/token, FP32 {f['format']} "
        f"{f['ms_per_token']:.3g} ms/token"
    )
    return [
        _row(
            mem_claim,
            f"{red.value}x",
            ratio,
            Verdict(v.verdict, v.reason + detail),
            f"{red.source}; {mem.source}",
        ),
        _row(lat_claim, paper_lat, lat_ratio, Verdict(lv.verdict, lv.reason + lat_detail), lat.source, 3),
    ]


def claims_sparsity(art: Artifacts) -> list[dict[str, Any]]:
    sp = sparsity_long(art)
    tern = sp[sp["variant"] == "ternary"]
    reasons = pretrain_reasons(art)
    mid, bnd = PAPER["sparsity_middle"], PAPER["sparsity_boundary"]
    mid_layers = mid.value["layers"]
    pooled = tern[tern["module"] == "all"]
    n_layers, paper_layers = int(pooled["layer_index"].max()), PAPER["setup"].value["n_layers"]
    if n_layers == paper_layers:
        per_seed_mid = pooled[pooled["layer"].isin(mid_layers)].groupby("seed")["frac_zero"].mean() * 100
        per_seed_bnd = pooled[~pooled["layer"].isin(mid_layers)].groupby("seed")["frac_zero"].mean() * 100
        m, b = Stat.of(per_seed_mid), Stat.of(per_seed_bnd)
        diff = Stat.of((per_seed_mid - per_seed_bnd).dropna())
    else:  # the paper's middle/boundary split is defined by layer number
        m = b = diff = Stat.of([])
        reasons = [*reasons, f"{n_layers} layers: the paper's L5-L9 / boundary split needs {paper_layers}"]
    emb = Stat.of(tern[tern["layer"] == "Emb"]["frac_zero"] * 100)
    lo, hi = mid.value["range_pct"]
    blo, bhi = bnd.value["range_pct"]
    tol = TOLERANCE["sparsity_pp"]

    def judged(v: Verdict, st: Stat) -> Verdict:
        return v if st.n else Verdict(NOT_COMPARABLE, "; ".join(reasons))

    return [
        _row(
            f"zero weights in middle layers {mid_layers[0]}-{mid_layers[-1]} (%)",
            f"{lo}-{hi} %",
            m,
            judged(judge_range(m, lo, hi, tol=tol, reasons=reasons), m),
            mid.source,
            1,
        ),
        _row(
            "zero weights in boundary layers (the others) (%)",
            f"{blo}-{bhi} %",
            b,
            judged(judge_range(b, blo, bhi, tol=tol, reasons=reasons), b),
            bnd.source,
            1,
        ),
        _row(
            "middle layers are sparser than boundary layers (difference, pp)",
            f"> 0 (about {(lo + hi) / 2 - (blo + bhi) / 2:.0f} pp)",
            diff,
            judged(judge_greater(diff, 0.0, what="no difference", reasons=reasons), diff),
            mid.source,
            1,
        ),
        _row(
            "embedding zero fraction (%)",
            f"{PAPER['sparsity_pct'].value['Emb']} %",
            emb,
            Verdict(
                NOT_COMPARABLE,
                "our embedding is not ternarized (kept full precision, as the paper's architecture "
                "says); the value is what absmean ternarization of it would give",
            ),
            PAPER["sparsity_pct"].source,
            1,
        ),
    ]


def claims_convergence(art: Artifacts) -> list[dict[str, Any]]:
    _, finals = convergence(art)
    c = PAPER["final_loss"]
    rows = []
    for corpus, paper in c.value.items():
        f = finals[(finals["corpus"] == corpus) & (finals["variant"] == "ternary")]
        claim = f"final training loss on {CORPUS_NAMES[corpus]} (ternary, label-smoothed)"
        if corpus not in art.convergence_corpora or f.empty or f["n_seeds"].iat[0] == 0:
            why = f"{corpus} not in convergence_corpora"
            if corpus == "writingprompts":
                why += " (WritingPrompts needs the HF hub)"
            rows.append(_row(claim, f"{paper}", None, Verdict(NOT_RUN, why), c.source, 3))
            continue
        st = Stat(f["final_loss_mean"].iat[0], f["final_loss_std"].iat[0], int(f["n_seeds"].iat[0]))
        v = judge_close(st, paper, rel=TOLERANCE["loss_rel"], reasons=pretrain_reasons(art, corpus))
        rows.append(_row(claim, f"{paper}", st, v, c.source, 3))
    return rows


def claims_table(art: Artifacts) -> pd.DataFrame:
    rows = (
        claims_pretraining(art)
        + claims_finetuning(art)
        + claims_efficiency(art)
        + claims_sparsity(art)
        + claims_convergence(art)
    )
    return pd.DataFrame(rows, columns=CLAIM_FIELDS)


# --- output -------------------------------------------------------------------------------------


def write_table(df: pd.DataFrame, out_dir: str | Path, name: str) -> Path:
    """Write ``df`` to ``out_dir/name.csv`` atomically (floats rounded to 6 significant digits)."""
    path = Path(out_dir) / f"{name}.csv"
    rows = [
        {k: (float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else v) for k, v in r.items()}
        for r in df.to_dict("records")
    ]
    rows = [
        {k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows
    ]
    write_csv(path, rows, list(df.columns))
    return path


def write_claims(claims: pd.DataFrame, path: str | Path) -> Path:
    """Write the claims table (``CLAIM_FIELDS``) atomically."""
    write_table(claims[CLAIM_FIELDS], Path(path).parent, Path(path).stem)
    return Path(path)
