"""Wall-clock budget of a preset on one GPU, per stage, from its config and a training throughput.

    python -m ternarylm.budget --config config.yaml --out docs/budget.md   # the committed table
    python -m ternarylm.budget --config config.yaml --tokens-per-s 612000  # a measured throughput

Token counts come from the config (docs, epochs, runs, seeds, tasks); tokens per document are
measured ones when ``results/tokens/<corpus>/train.json`` exists, else the estimates below. The
constants marked "estimate" are not measurements: replace them when a GPU run measures them
(benchmarks/gpu/first_run.sh prints compile time and fine-tune ms/step).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from ternarylm.config import resolve
from ternarylm.layout import Layout, pretrain_epochs
from ternarylm.layout import runs as layout_runs

# tokens per training document (WordPiece 30522). tinystories: the issue's ~200M tokens per
# 15-epoch run of 60k stories; writingprompts: its ~0.9B tokens per run; estimates.
TOKENS_PER_DOC = {"tinystories": 222, "writingprompts": 1000, "synthetic": 60}
SHAKESPEARE_TOKENS = 300_000  # 1.1M characters at ~3.7 characters per token (estimate)
FINETUNE_TRAIN_EXAMPLES = {"mrpc": 3668, "sst2": 67349, "cola": 8551}  # GLUE train splits
FINETUNE_TOKENS_PER_EXAMPLE = {"mrpc": 64, "sst2": 32, "cola": 32}  # padded bucket (estimate)
# uncompiled fine-tuning is launch-bound: ~4k kernel launches per ternary step (profiled) x ~8 us
FINETUNE_EAGER_STEP_S = 4000 * 8e-6
COMPILE_S = 60.0  # torch.compile of the paper model, per pretraining process (estimate)
CKPT_S = 3.9  # one 1.58 GB checkpoint (measured on CPU disk)
EVAL_COST = 1 / 3  # a forward-only token costs about a third of a training token
THROUGHPUTS = {"target": 500_000, "seed notebook": 46_000}  # target: benchmarks/gpu/README.md


def corpus_train_tokens(config: dict[str, Any], corpus: str) -> int:
    """Training tokens of one epoch of ``corpus``: measured if tokenized already, else estimated."""
    import json

    config = resolve(config)
    meta = Path(Layout(config["results_dir"]).tokens(corpus, "train", "json"))
    if meta.exists():
        return int(json.loads(meta.read_text())["n_tokens"])
    if corpus == "shakespeare":
        frac = config["corpora"]["shakespeare"]["val_fraction"]
        return int(SHAKESPEARE_TOKENS * (1 - frac))
    c = config["corpora"].get(corpus) or {}
    docs = c.get("max_train_docs") or c.get("train_docs") or 0
    return int(docs * TOKENS_PER_DOC.get(corpus, 222))


def pretrain_runs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per pretraining process: corpus, epochs, training tokens."""
    config = resolve(config)
    train = config["train"]
    runs = [
        {"corpus": c, "epochs": pretrain_epochs(config, c), "name": f"{c} {v} s{s}"}
        for c, v, s in layout_runs(config).pretrain  # the main run doubles as its convergence run
    ]
    seq, bs = config["model"]["seq_len"], train["batch_size"]
    for r in runs:
        tokens = corpus_train_tokens(config, r["corpus"]) * r["epochs"]
        if train["max_steps"]:
            tokens = min(tokens, train["max_steps"] * bs * seq)
        r["tokens"] = tokens
    return runs


def stage_seconds(config: dict[str, Any], tokens_per_s: float) -> list[tuple[str, float, str]]:
    """(stage, seconds, how it was computed) for the whole preset at ``tokens_per_s`` training throughput."""
    config = resolve(config)
    train, seq = config["train"], config["model"]["seq_len"]
    step_tokens = train["batch_size"] * seq
    runs = pretrain_runs(config)
    tokens = sum(r["tokens"] for r in runs)
    steps = tokens / step_tokens
    evals = steps / train["eval_every"] + sum(r["epochs"] for r in runs)
    eval_tokens = evals * train["eval_batches"] * step_tokens
    # checkpoints come by wall clock (ckpt_minutes, per process) plus every ckpt_every steps if set
    minutes = train["ckpt_minutes"]
    n_ckpt = tokens / tokens_per_s / (60 * minutes) if minutes else 0.0
    n_ckpt += steps / train["ckpt_every"] if train["ckpt_every"] else 0.0
    cadence = " + ".join(
        [f"every {minutes} min"] * bool(minutes)
        + [f"every {train['ckpt_every']} steps"] * bool(train["ckpt_every"])
    )
    ev, plan = config["evaluate"], layout_runs(config)
    # evaluated models: the twins and the fp32-noncausal control; fine-tuned backbones: the twins and scratch
    n_models = len(plan.main) + len(plan.noncausal)
    n_backbones = len(plan.backbones) * len(config["seeds"])
    c = config["corpora"].get(config["main_corpus"]) or {}
    val_frac = (c.get("max_val_docs") or 1) / (c.get("max_train_docs") or 1)
    val_tokens = corpus_train_tokens(config, config["main_corpus"]) * val_frac  # whole val split
    eval_stage_tokens = n_models * ((ev["train_batches"] or 0) * step_tokens + val_tokens)
    ft = config["finetune"]
    ft_steps = ft_tokens = 0.0
    for task in ft["tasks"]:
        n = FINETUNE_TRAIN_EXAMPLES.get(task, 0)
        ft_steps += ft["epochs"] * math.ceil(n / ft["batch_size"]) * n_backbones
        ft_tokens += ft["epochs"] * n * FINETUNE_TOKENS_PER_EXAMPLE.get(task, 64) * n_backbones
    ft_s = max(ft_steps * FINETUNE_EAGER_STEP_S, ft_tokens / tokens_per_s)
    b = config["bench"]
    # null devices on the GPU machine this budget is for: cpu + cuda (gpus.bench_devices)
    devices = b["devices"] if b["devices"] is not None else ["cpu", "cuda"]
    bench_rows = len(b["formats"]) * len(b["batch_sizes"]) * len(devices)
    return [
        (f"pretrain: {len(runs)} runs", tokens / tokens_per_s, f"{tokens / 1e9:.2f}B tokens"),
        (
            "compile, per pretraining process",
            len(runs) * COMPILE_S,
            f"{len(runs)} x {COMPILE_S:.0f} s (estimate)",
        ),
        ("checkpoints", n_ckpt * CKPT_S, f"{n_ckpt:.0f} x {CKPT_S} s ({cadence or 'at the end only'})"),
        (
            "validation during training",
            eval_tokens * EVAL_COST / tokens_per_s,
            f"{eval_tokens / 1e9:.2f}B fwd tokens",
        ),
        ("evaluate stage", eval_stage_tokens * EVAL_COST / tokens_per_s, f"{n_models} models"),
        (
            f"fine-tune: {n_backbones * len(ft['tasks'])} runs",
            ft_s,
            f"{ft_steps:.0f} eager steps (launch-bound {FINETUNE_EAGER_STEP_S * 1e3:.0f} ms or tokens)",
        ),
        ("bench", bench_rows * b["budget_s"], f"<= {bench_rows} format x batch rows x budget_s"),
    ]


def _hms(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min"


def budget_markdown(config: dict[str, Any], throughputs: dict[str, float]) -> str:
    """A Markdown table: one row per stage, one column per throughput, and the totals."""
    cols = {name: stage_seconds(config, tps) for name, tps in throughputs.items()}
    first = next(iter(cols.values()))
    head = " | ".join(f"{n} ({tps / 1e3:.3g}k tokens/s)" for n, tps in throughputs.items())
    lines = [f"| stage | how | {head} |", "|---|---|" + "---|" * len(throughputs)]
    for i, (stage, _, how) in enumerate(first):
        lines.append(f"| {stage} | {how} | " + " | ".join(_hms(c[i][1]) for c in cols.values()) + " |")
    totals = " | ".join(f"**{_hms(sum(s for _, s, _ in c))}**" for c in cols.values())
    lines.append(f"| **total** | | {totals} |")
    return "\n".join(lines) + "\n"


def total_seconds(config: dict[str, Any], tokens_per_s: float) -> float:
    return sum(s for _, s, _ in stage_seconds(config, tokens_per_s))


def main(argv: list[str] | None = None) -> int:
    from ternarylm.io import load_config, write_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--tokens-per-s", type=float, help="a measured training throughput (adds a column)")
    p.add_argument("--out", type=Path, help="write the Markdown page here (else print the table)")
    args = p.parse_args(argv)
    config = load_config(args.config)
    tps = dict(THROUGHPUTS)
    if args.tokens_per_s:
        tps = {"measured": args.tokens_per_s, **tps}
    table = budget_markdown(config, tps)
    if args.out is None:
        print(table, end="")
        return 0
    write_text(
        args.out,
        _PAGE.format(
            config=args.config, table=table, doc=__doc__.split("\n\n", 2)[2], assumptions=_assumptions()
        ),
    )
    return 0


def _assumptions() -> str:
    rows = [
        ("tokens per training document", TOKENS_PER_DOC),
        ("Shakespeare tokens", SHAKESPEARE_TOKENS),
        ("fine-tune train examples (GLUE)", FINETUNE_TRAIN_EXAMPLES),
        ("fine-tune tokens per example (padded)", FINETUNE_TOKENS_PER_EXAMPLE),
        ("eager fine-tune step, s (launch-bound)", FINETUNE_EAGER_STEP_S),
        ("torch.compile per process, s", COMPILE_S),
        ("one checkpoint save, s", CKPT_S),
        ("cost of a forward-only token vs a training token", round(EVAL_COST, 3)),
    ]
    return "\n".join(f"- {k}: `{v}`" for k, v in rows)


_PAGE = """# Time budget of the paper preset on one GPU

Generated by `python -m ternarylm.budget --config {config} --out docs/budget.md` (rerun it after
changing the config; `benchmarks/train_throughput.py` prints the same projection from the
throughput it measures). Nothing here is a GPU measurement: no GPU has run this code yet.

{table}
{doc}
{assumptions}

The seed column runs this pipeline at the seed notebook's training throughput; only the
token-bound stages scale with it. Fine-tuning is uncompiled and launch-bound, so it does not.
"""

if __name__ == "__main__":
    raise SystemExit(main())
