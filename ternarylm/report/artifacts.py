"""Where every artifact lives under results/ (``Layout``) and what each report notebook reads
(``Artifacts``). Imported by the Snakefile, the notebooks and ``ternarylm report``: one list.

Layout methods return ``str`` and take any ``str``/``int`` part, so Snakemake wildcards pass
through unchanged: ``Layout("results").eval_json("{corpus}", "{variant}", "{seed}")``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ternarylm.io import load_config
from ternarylm.report.formats import NONCAUSAL, SCRATCH, SPARSITY_FIELDS

Part = str | int

SPLITS = ("train", "val")  # the splits `prepare` and `tokenize` write for every corpus
NOTEBOOKS = ("pretraining", "finetuning", "efficiency", "sparsity", "claims")
# what each notebook writes: tables/{name}.csv and figures/{name}.{png,pdf}
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
FIGURE_FORMATS = ("png", "pdf")
# config sections each notebook reads beyond its input files (report rules put them in params:
# so that changing one reruns exactly the notebooks that read it)
NOTEBOOK_CONFIG = {
    "pretraining": ["model", "train", "convergence", "convergence_corpora", "tokenizer", "controls"],
    "finetuning": ["finetune", "controls"],
    "efficiency": ["bench"],
    "sparsity": ["model"],
    "claims": ["model", "train", "data_source", "corpora", "convergence", "convergence_corpora"]
    + ["finetune", "bench", "tokenizer", "controls"],
}


class Layout:
    """Every path under the results folder (design.md §3), spelled once."""

    def __init__(self, results_dir: str | os.PathLike) -> None:
        self.root = os.fspath(results_dir)

    def path(self, *parts: Part) -> str:
        return os.path.join(self.root, *[str(p) for p in parts])

    def config_file(self) -> str:
        """The latest run's merged config, for people and scripts; jobs read :meth:`run_config`."""
        return self.path("config.resolved.json")

    def run_config(self, digest: str) -> str:
        """One invocation's merged config, named by its content hash (never rewritten)."""
        return self.path("config", f"{digest}.json")

    # prepare / tokenizer / tokenize
    def data(self, corpus: Part, file: Part) -> str:
        return self.path("data", corpus, file)

    def manifest(self, corpus: Part) -> str:
        return self.data(corpus, "manifest.json")

    def tokenizer_json(self) -> str:
        return self.path("tokenizer", "tokenizer.json")

    def tokens(self, corpus: Part, split: Part, ext: str = "bin") -> str:
        return self.path("tokens", corpus, f"{split}.{ext}")

    # pretrain / evaluate
    def model_dir(self, corpus: Part, variant: Part, seed: Part) -> str:
        return self.path("pretrain", corpus, variant, f"seed{seed}")

    def model_file(self, corpus: Part, variant: Part, seed: Part, name: str) -> str:
        """``name``: model.safetensors, config.json or metrics.csv."""
        return os.path.join(self.model_dir(corpus, variant, seed), name)

    def metrics_csv(self, corpus: Part, variant: Part, seed: Part) -> str:
        return self.model_file(corpus, variant, seed, "metrics.csv")

    def trajectory_csv(self, corpus: Part, variant: Part, seed: Part) -> str:
        """Zero fraction, alpha and weight shape per layer and module at each eval step (trajectory.py)."""
        return self.model_file(corpus, variant, seed, "trajectory.csv")

    def ckpt_dir(self, corpus: Part, variant: Part, seed: Part) -> str:
        # outside the rule's outputs: Snakemake deletes outputs of a failed job, never this
        return self.path("ckpt", "pretrain", corpus, variant, f"seed{seed}")

    def eval_json(self, corpus: Part, variant: Part, seed: Part) -> str:
        return self.path("eval", corpus, variant, f"seed{seed}.json")

    # finetune / sparsity / bench
    def finetune_dir(self, task: Part, variant: Part, seed: Part) -> str:
        return self.path("finetune", task, variant, f"seed{seed}")

    def finetune_file(self, task: Part, variant: Part, seed: Part, name: str) -> str:
        """``name``: metrics.json or curve.csv."""
        return os.path.join(self.finetune_dir(task, variant, seed), name)

    def finetune_ckpt_dir(self, task: Part, variant: Part, seed: Part) -> str:
        return self.path("ckpt", "finetune", task, variant, f"seed{seed}")

    def sparsity_csv(self, variant: Part, seed: Part) -> str:
        return self.path("sparsity", variant, f"seed{seed}.csv")

    def bench_dir(self, device: Part) -> str:
        return self.path("bench", device)

    def bench_csv(self, device: Part) -> str:
        return os.path.join(self.bench_dir(device), "results.csv")

    def bench_env(self, device: Part) -> str:
        return os.path.join(self.bench_dir(device), "env.json")

    # deploy: seed 0 of each twin in publishable forms (GGUF file, HF folders)
    def deploy_gguf(self, variant: Part) -> str:
        return self.path("deploy", variant, f"ternarylm-{variant}.gguf")

    def deploy_file(self, variant: Part, form: Part, name: str) -> str:
        """``form``: hf or hf-bitnet; ``name``: model.safetensors, config.json, export.json, README.md."""
        return self.path("deploy", variant, form, name)

    # logs and Snakemake's per-rule benchmark TSVs
    def log(self, *parts: Part) -> str:
        return self.path("logs", *parts)

    def rule_benchmark(self, *parts: Part) -> str:
        return self.path("benchmarks", *parts)

    # report
    def notebooks_dir(self) -> str:
        return self.path("notebooks")

    def notebook(self, name: Part, ext: str = "ipynb") -> str:
        return os.path.join(self.notebooks_dir(), f"{name}.{ext}")

    def tables_dir(self) -> str:
        return self.path("tables")

    def table(self, name: Part) -> str:
        return os.path.join(self.tables_dir(), f"{name}.csv")

    def figures_dir(self) -> str:
        return self.path("figures")

    def figure(self, name: Part, ext: str = "png") -> str:
        return os.path.join(self.figures_dir(), f"{name}.{ext}")

    def claims_csv(self) -> str:
        return self.path("claims.csv")


def require(path: str | os.PathLike, what: str = "artifact") -> Path:
    """``path`` if it exists, else FileNotFoundError naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing {what}: {path}")
    return path


class Artifacts(Layout):
    """The artifacts of one resolved config: which runs exist, what each notebook reads, readers."""

    def __init__(self, results_dir: str | os.PathLike, config: dict[str, Any]) -> None:
        super().__init__(results_dir)
        self.cfg = config
        self.main = config["main_corpus"]
        self.variants: list[str] = list(config["variants"])
        self.seeds: list[int] = [int(s) for s in config["seeds"]]

    @classmethod
    def from_config_file(
        cls, config_path: str | os.PathLike, results_dir: str | os.PathLike | None = None
    ) -> Artifacts:
        cfg = load_config(require(config_path, "config"))
        return cls(results_dir if results_dir is not None else cfg["results_dir"], cfg)

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

    @property
    def controls(self) -> dict[str, bool]:
        return {k: bool(v) for k, v in (self.cfg.get("controls") or {}).items()}

    def main_runs(self) -> list[tuple[str, str, int]]:
        return [(self.main, v, s) for v in self.variants for s in self.seeds]

    def noncausal_runs(self) -> list[tuple[str, str, int]]:
        """The fp32-noncausal control's pretraining runs (main corpus, every seed), [] if off."""
        return [(self.main, NONCAUSAL, s) for s in self.seeds] if self.controls.get("noncausal") else []

    @property
    def backbones(self) -> list[str]:
        """What each task is fine-tuned from: the twins, then the scratch control if configured."""
        return self.variants + ([SCRATCH] if self.controls.get("scratch") else [])

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

    # the one list of each notebook's inputs: report.smk, `ternarylm report` and the notebooks
    def inputs(self, notebook: str) -> list[str]:
        if notebook not in NOTEBOOKS:
            raise ValueError(f"unknown notebook {notebook!r}; choose one of {', '.join(NOTEBOOKS)}")
        main = self.main_runs()
        control = self.noncausal_runs()  # evaluated beside the twins (T3, F3), nothing downstream
        conv = [r for c in self.convergence_corpora for r in self.convergence_runs(c)]
        first = [(self.main, v, self.seeds[0]) for v in self.variants]
        runs = [(v, s) for v in self.variants for s in self.seeds]
        paths: list[str] = []
        if notebook in ("pretraining", "claims"):
            paths += [self.tokenizer_json()]  # T1 and the comparability reasons: the real vocabulary
            paths += [self.eval_json(*r) for r in main + control]
            paths += [self.metrics_csv(*r) for r in main + control + conv]
            paths += [self.manifest(c) for c in [self.main, *self.convergence_corpora]]
            paths += [
                self.tokens(c, sp, "json") for c in [self.main, *self.convergence_corpora] for sp in SPLITS
            ]
        if notebook == "pretraining":
            paths += [self.model_file(*r, f) for r in first for f in ("config.json", "model.safetensors")]
        if notebook in ("finetuning", "claims"):
            files = ("metrics.json", "curve.csv") if notebook == "finetuning" else ("metrics.json",)
            tuned = [(b, s) for b in self.backbones for s in self.seeds]  # the twins, then scratch
            paths += [self.finetune_file(t, b, s, f) for t in self.tasks for b, s in tuned for f in files]
        if notebook in ("efficiency", "claims"):
            paths += [self.bench_csv(d) for d in self.devices]
            if notebook == "efficiency":
                paths += [self.bench_env(d) for d in self.devices]
        if notebook in ("sparsity", "claims"):
            paths += [self.sparsity_csv(v, s) for v, s in runs]
        return list(dict.fromkeys(paths))

    def tables(self, notebook: str) -> list[str]:
        return [self.table(t) for t in NOTEBOOK_TABLES[notebook]]

    def figure_names(self, notebook: str) -> list[str]:
        skip = notebook == "finetuning" and not self.tasks  # no curves without a task
        return [] if skip else list(NOTEBOOK_FIGURES[notebook])

    def figures(self, notebook: str, ext: str = "png") -> list[str]:
        return [self.figure(f, ext) for f in self.figure_names(notebook)]

    def outputs(self, notebook: str) -> list[str]:
        """Tables, figures and (claims) claims.csv that ``notebook`` writes."""
        out = self.tables(notebook) + [p for ext in FIGURE_FORMATS for p in self.figures(notebook, ext)]
        return out + ([self.claims_csv()] if notebook == "claims" else [])

    def missing(self, notebook: str) -> list[str]:
        return [p for p in self.inputs(notebook) if not os.path.exists(p)]

    # readers: a missing file raises FileNotFoundError naming it, a malformed one ValueError
    def read_json(self, path: str | os.PathLike) -> dict[str, Any]:
        path = require(path)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e

    def read_csv(self, path: str | os.PathLike, columns: Sequence[str] = ()) -> pd.DataFrame:
        df = pd.read_csv(require(path))
        if df.empty:
            raise ValueError(f"{path}: no rows")
        lacking = [c for c in columns if c not in df.columns]
        if lacking:
            raise ValueError(f"{path}: missing column(s) {lacking}; has {list(df.columns)}")
        return df

    def eval_table(self, runs: Sequence[tuple[str, str, int]] | None = None) -> pd.DataFrame:
        """One row per run (default: the main runs): the evaluate JSON plus corpus/variant/seed."""
        rows = []
        for corpus, v, s in self.main_runs() if runs is None else runs:
            d = self.read_json(self.eval_json(corpus, v, s))
            rows.append({"corpus": corpus, "variant": v, "seed": s, **d})
        return pd.DataFrame(rows)

    def control_eval_table(self) -> pd.DataFrame:
        """eval_table of the fp32-noncausal control (empty frame when it is off)."""
        return self.eval_table(self.noncausal_runs())

    def tokenizer_vocab(self) -> int:
        """Entries of the tokenizer actually used (tokenizer.json), not the requested vocab_size."""
        tok = self.read_json(self.tokenizer_json())
        vocab = (tok.get("model") or {}).get("vocab")
        if not isinstance(vocab, dict):
            raise ValueError(f"{self.tokenizer_json()}: no model.vocab table")
        added = {t["id"] for t in tok.get("added_tokens") or []} - set(vocab.values())
        return len(vocab) + len(added)

    def metrics(self, corpus: str, variant: str, seed: int) -> pd.DataFrame:
        cols = ("step", "epoch", "train_loss", "val_loss")
        df = self.read_csv(self.metrics_csv(corpus, variant, seed), cols)
        df = df.apply(pd.to_numeric, errors="coerce")
        return df.assign(corpus=corpus, variant=variant, seed=seed)

    def n_train_docs(self, corpus: str) -> int | None:
        """Training documents actually prepared (``manifest.json``), None if it does not say."""
        path = self.manifest(corpus)
        if not os.path.exists(path):
            return None
        n = (self.read_json(path).get("splits") or {}).get("train", {}).get("n_docs")
        return int(n) if n is not None else None

    def token_counts(self, corpus: str) -> dict[str, int]:
        """Tokens per split (``n_tokens`` of the tokenize stage's ``tokens/{corpus}/{split}.json``)."""
        counts = {}
        for split in SPLITS:
            path = self.tokens(corpus, split, "json")
            n = self.read_json(path).get("n_tokens")
            if n is None:
                raise ValueError(f"{path}: no n_tokens (rerun tokenize)")
            counts[split] = int(n)
        return counts

    def finetune_metrics(self, task: str, variant: str, seed: int) -> dict[str, Any]:
        return self.read_json(self.finetune_file(task, variant, seed, "metrics.json"))

    def finetune_curve(self, task: str, variant: str, seed: int) -> pd.DataFrame:
        df = self.read_csv(self.finetune_file(task, variant, seed, "curve.csv"), ("epoch",))
        return df.assign(task=task, variant=variant, seed=seed)

    def bench_environment(self, device: str) -> dict[str, Any]:
        return self.read_json(self.bench_env(device))

    def sparsity(self, variant: str, seed: int) -> pd.DataFrame:
        cols = [c for c in SPARSITY_FIELDS if c not in ("variant", "alpha")]
        df = self.read_csv(self.sparsity_csv(variant, seed), cols)
        df["quantized"] = df["quantized"].astype(str).str.lower().isin(["true", "1"])
        return df.assign(variant=variant, seed=seed)
