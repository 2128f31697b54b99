"""The contract between the stages, the workflow and the report: where every artifact lives under
results/ (``Layout``), which runs a config trains (``runs``), what each report notebook reads
(``Plan``), and the names a file's writer and its reader agree on.

Imports neither torch nor pandas: the Snakefile parses with it, the torch stages and the report
both import it, so neither side depends on the other.

Layout methods return ``str`` and take any ``str``/``int`` part, so Snakemake wildcards pass
through unchanged: ``Layout("results").eval_json("{corpus}", "{variant}", "{seed}")``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ternarylm.config import resolve

Part = str | int
Run = tuple[str, str, int]  # (corpus, variant, seed) of one pretraining run

# the twins (config `variants`): the same model with ternary or full-precision linears
TWINS = ("ternary", "fp32")
# control runs (config `controls`): a pretraining variant and a fine-tuning backbone beside the twins
NONCAUSAL = "fp32-noncausal"  # the FP32 twin without the causal mask (the authors' baseline)
SCRATCH = "scratch"  # the ternary architecture fine-tuned from random init, never pretrained

# sparsity/{variant}/seed{s}.csv, written by ternarylm.sparsity
SPARSITY_FIELDS = [
    "variant",
    "layer",
    "layer_index",
    "module",
    "quantized",
    "frac_zero",
    "frac_zero_init",  # the same module's zero fraction at initialisation (empty: seed unknown)
    "frac_pos",
    "frac_neg",
    "alpha",
    "n_weights",
]

# models/{corpus}/{variant}/seed{s}/trajectory.csv, written by ternarylm.trajectory during pretraining:
# one row per (eval step, layer, module), plus a size-weighted module=all row per layer
# the mechanisms target's figures (report/figures_mech.py): zeros vs step, per-epoch val/train ratios
TRAJECTORY_FIGURE, RATIO_FIGURE = "f2_sparsity_trajectory", "f3_ratio_curves"
TRAJECTORY_FIELDS = [
    "step",
    "epoch",
    "layer",
    "layer_index",
    "module",
    "quantized",  # False: the fp32 twin's weights, counted as absmean rounding would (a control)
    "frac_zero",
    "alpha",
    "absmean_over_std",  # sqrt(2/pi) = 0.798 for a Gaussian
    "excess_kurtosis",  # 0 for a Gaussian
    "n_weights",
]

# bench/{device}/results.csv, written by ternarylm.bench: a row is the form a model ships as
# (deployed) or a reference point (baseline); only deployed rows may decide a claim
ROLE_COLUMN = "role"
ROLES = ("deployed", "baseline")

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
    """Every path under the results folder, spelled once."""

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
    def preflight_json(self) -> str:
        """What `ternarylm preflight` resolved (every dataset + the tokenizer), before any data job."""
        return self.path("preflight.json")

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

    def mechanisms_csv(self) -> str:
        """The mechanism rows at the run's own scale (`snakemake mechanisms`, report/mechanisms.py)."""
        return self.path("mechanisms.csv")


@dataclass(frozen=True)
class Runs:
    """What one config trains and fine-tunes; built by :func:`runs`, the only place that says so."""

    main: list[Run]  # the twins x seeds on the main corpus
    noncausal: list[Run]  # the fp32-noncausal control (main corpus, every seed), [] if off
    f1: dict[str, list[Run]]  # F1's runs per convergence corpus, main runs included
    backbones: list[str]  # what each task is fine-tuned from: the twins, then scratch if on
    tasks: list[str]
    devices: list[str]  # bench devices

    @property
    def convergence(self) -> list[Run]:
        """F1's runs that are not main runs: the extra pretraining the convergence rule does."""
        return [r for rs in self.f1.values() for r in rs if r not in self.main]

    @property
    def pretrain(self) -> list[Run]:
        """Every pretraining run: the twins x seeds, the non-causal control, then F1's extra runs."""
        return self.main + self.noncausal + self.convergence


def runs(config: dict[str, Any]) -> Runs:
    """The runs of ``config``; a key it lacks takes config.yaml's value (the schema defaults), the
    one fallback every reader of a partial config gets."""
    cfg = resolve(config)
    main, seeds = cfg["main_corpus"], [int(s) for s in cfg["seeds"]]
    variants, controls, conv = list(cfg["variants"]), cfg["controls"], cfg["convergence"]
    f1 = {
        c: [(c, v, int(s)) for v in conv["variants"] for s in conv["seeds"]]
        for c in cfg["convergence_corpora"]
    }
    return Runs(
        main=[(main, v, s) for v in variants for s in seeds],
        noncausal=[(main, NONCAUSAL, s) for s in seeds] if controls["noncausal"] else [],
        f1=f1,
        backbones=variants + ([SCRATCH] if controls["scratch"] else []),
        tasks=list(cfg["finetune"]["tasks"] or []),
        devices=list(cfg["bench"]["devices"] or []),
    )


def pretrain_epochs(config: dict[str, Any], corpus: str) -> int:
    """Epochs of a pretraining run on ``corpus``: convergence.epochs for F1's runs (a convergence
    corpus other than the main one), else train.epochs."""
    cfg = resolve(config)
    f1 = corpus != cfg["main_corpus"] and corpus in cfg["convergence_corpora"]
    return int(cfg["convergence" if f1 else "train"]["epochs"])


class Plan(Layout):
    """The artifacts of one config: which runs exist and what each notebook reads and writes."""

    def __init__(self, results_dir: str | os.PathLike, config: dict[str, Any]) -> None:
        super().__init__(results_dir)
        self.cfg = config
        self.runs = runs(config)
        self._resolved = resolve(config)
        self.main: str = self._resolved["main_corpus"]
        self.variants: list[str] = list(self._resolved["variants"])
        self.seeds: list[int] = [int(s) for s in self._resolved["seeds"]]

    @property
    def tasks(self) -> list[str]:
        return self.runs.tasks

    @property
    def devices(self) -> list[str]:
        return self.runs.devices

    @property
    def convergence_corpora(self) -> list[str]:
        return list(self.runs.f1)

    @property
    def controls(self) -> dict[str, bool]:
        return {k: bool(v) for k, v in self._resolved["controls"].items()}

    def main_runs(self) -> list[Run]:
        return list(self.runs.main)

    def noncausal_runs(self) -> list[Run]:
        """The fp32-noncausal control's pretraining runs (main corpus, every seed), [] if off."""
        return list(self.runs.noncausal)

    @property
    def backbones(self) -> list[str]:
        """What each task is fine-tuned from: the twins, then the scratch control if configured."""
        return list(self.runs.backbones)

    def convergence_runs(self, corpus: str) -> list[Run]:
        """F1's runs on ``corpus`` (the main corpus reuses its main runs), [] if not configured."""
        return list(self.runs.f1.get(corpus, []))

    def epochs(self, corpus: str) -> int:
        return pretrain_epochs(self._resolved, corpus)

    # the one list of each notebook's inputs: report.smk, `ternarylm report` and the notebooks
    def inputs(self, notebook: str) -> list[str]:
        if notebook not in NOTEBOOKS:
            raise ValueError(f"unknown notebook {notebook!r}; choose one of {', '.join(NOTEBOOKS)}")
        main = self.main_runs()
        control = self.noncausal_runs()  # evaluated beside the twins (T3, F3), nothing downstream
        conv = [r for c in self.convergence_corpora for r in self.convergence_runs(c)]
        first = [(self.main, v, self.seeds[0]) for v in self.variants]
        runs = [(v, s) for v in self.variants for s in self.seeds]
        corpora = [self.main, *self.convergence_corpora]
        paths: list[str] = []
        if notebook in ("pretraining", "claims"):
            paths += [self.tokenizer_json()]  # T1 and the comparability reasons: the real vocabulary
            paths += [self.eval_json(*r) for r in main + control]
            paths += [self.metrics_csv(*r) for r in main + control + conv]
            paths += [self.manifest(c) for c in corpora]
            paths += [self.tokens(c, sp, "json") for c in corpora for sp in SPLITS]
        if notebook == "pretraining":
            paths += [self.model_file(*r, f) for r in first for f in ("config.json", "model.safetensors")]
        if notebook == "claims":  # comparability is read from each run's own record
            paths += [self.model_file(*r, "config.json") for r in main + control + conv]
        if notebook in ("finetuning", "claims"):
            files = ("metrics.json", "curve.csv") if notebook == "finetuning" else ("metrics.json",)
            tuned = [(b, s) for b in self.backbones for s in self.seeds]  # the twins, then scratch
            paths += [self.finetune_file(t, b, s, f) for t in self.tasks for b, s in tuned for f in files]
        if notebook in ("efficiency", "claims"):
            paths += [self.bench_csv(d) for d in self.devices]
            paths += [self.bench_env(d) for d in self.devices]  # provenance (claims), machine (T6)
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
