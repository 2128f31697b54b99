"""Wall-clock budget of a preset on one GPU, per stage, from its config and a training throughput.

    python -m ternarylm.budget --config config.yaml --out docs/budget.md --readme benchmarks/gpu/README.md
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
from ternarylm.layout import NOTEBOOKS, Layout, pretrain_epochs
from ternarylm.layout import runs as layout_runs

# tokens per training document (WordPiece 30522). tinystories: the issue's ~200M tokens per
# 15-epoch run of 60k stories; writingprompts: its ~0.9B tokens per run; estimates.
TOKENS_PER_DOC = {"tinystories": 222, "writingprompts": 1000, "synthetic": 60}
SHAKESPEARE_TOKENS = 300_000  # 1.1M characters at ~3.7 characters per token (estimate)
FINETUNE_TRAIN_EXAMPLES = {"mrpc": 3668, "sst2": 67349, "cola": 8551}  # GLUE train splits
FINETUNE_EVAL_EXAMPLES = {"mrpc": 408 + 1725, "sst2": 872, "cola": 1043}  # dev (+ MRPC's labeled test)
FINETUNE_TOKENS_PER_EXAMPLE = {"mrpc": 64, "sst2": 32, "cola": 32}  # padded bucket (estimate)
# fine-tuning runs eager (config.yaml finetune.compile: false): 27 processes each compiling one graph
# per bucket length and mode would spend more on compiling than the ~2.5k steps per run save.
# Uncompiled it is launch-bound: ~4k kernel launches per ternary training step (profiled) x ~8 us.
FINETUNE_EAGER_STEP_S = 4000 * 8e-6
FINETUNE_COMPILE_S = 240.0  # per fine-tune process if finetune.compile is on: ~8 graphs (estimate)
COMPILE_S = 60.0  # torch.compile of the paper model, per pretraining process (estimate)
CKPT_S = 3.9  # one 1.58 GB checkpoint (measured on CPU disk)
EVAL_COST = 1 / 3  # a forward-only token costs about a third of a training token
# HF hub downloads: datasets fetches and converts a repo's whole split before slicing it, so the
# 60k-story TinyStories slice costs the full 2.1M-story parquet (sizes: estimates)
HUB_DOWNLOAD_MB = {"tinystories": 1000, "writingprompts": 650, "shakespeare": 1, "glue": 40, "tokenizer": 1}
DOWNLOAD_MB_PER_S = 50.0  # target, unmeasured (a datacenter link to the hub)
ARROW_MB_PER_S = 100.0  # parquet -> arrow cache conversion (estimate)
TOKENIZE_TOKENS_PER_S = 1_000_000  # `ternarylm tokenize`, one process (target, unmeasured)
DEPLOY_S_PER_EXPORT = 60.0  # one GGUF / HF export of the paper model, with its checks (estimate)
REPORT_S_PER_NOTEBOOK = 60.0  # papermill + HTML per notebook (estimate)
THROUGHPUTS = {
    "target, unmeasured": 500_000,
    "seed notebook, as reported": 46_000,
}  # benchmarks/gpu/README.md


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


Row = tuple[str, float, str]


def _pretrain_rows(config: dict[str, Any], tokens_per_s: float) -> list[Row]:
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
    n_models = len(plan.main) + len(plan.noncausal)  # evaluated: the twins and the fp32-noncausal control
    c = config["corpora"].get(config["main_corpus"]) or {}
    val_frac = (c.get("max_val_docs") or 1) / (c.get("max_train_docs") or 1)
    val_tokens = corpus_train_tokens(config, config["main_corpus"]) * val_frac  # whole val split
    eval_stage_tokens = n_models * ((ev["train_batches"] or 0) * step_tokens + val_tokens)
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
    ]


def _data_rows(config: dict[str, Any]) -> list[Row]:
    """Download + arrow conversion (hf only), then tokenizing every split once."""
    corpora = list(dict.fromkeys([config["main_corpus"], *config["convergence_corpora"]]))
    rows: list[Row] = []
    if config["data_source"] == "hf" and not config["hf_mirror"]:
        names = [c for c in corpora if c in HUB_DOWNLOAD_MB] + ["glue", "tokenizer"]
        mb = sum(HUB_DOWNLOAD_MB[n] for n in names)
        s = mb / DOWNLOAD_MB_PER_S + mb / ARROW_MB_PER_S
        how = f"{mb / 1e3:.1f} GB at {DOWNLOAD_MB_PER_S:.0f} MB/s (target, unmeasured) + arrow conversion"
        rows.append(("prepare: hub download + conversion", s, how))
    tokens = sum(corpus_train_tokens(config, c) for c in corpora) * 1.05  # + the val splits
    how = f"{tokens / 1e6:.0f}M tokens at {TOKENIZE_TOKENS_PER_S / 1e6:.0f}M/s (target, unmeasured)"
    rows.append(("tokenize", tokens / TOKENIZE_TOKENS_PER_S, how))
    return rows


def _finetune_rows(config: dict[str, Any], tokens_per_s: float) -> list[Row]:
    """Fine-tuning as it runs on CUDA: eager launch-bound steps, or compile per process + steps."""
    ft = config["finetune"]
    n_backbones = len(layout_runs(config).backbones) * len(config["seeds"])  # the twins and scratch
    epochs, bs = ft["epochs"], ft["batch_size"]
    ebs = ft["eval_batch_size"] or 2 * bs
    steps = eval_steps = tokens = 0.0
    for task in ft["tasks"]:
        n, n_eval = FINETUNE_TRAIN_EXAMPLES.get(task, 0), FINETUNE_EVAL_EXAMPLES.get(task, 0)
        steps += epochs * math.ceil(n / bs) * n_backbones
        eval_steps += epochs * math.ceil((n_eval + 0.1 * n) / ebs) * n_backbones  # dev (+test) + held out
        tokens += epochs * n * FINETUNE_TOKENS_PER_EXAMPLE.get(task, 64) * n_backbones
    n_runs = n_backbones * len(ft["tasks"])
    launch_s = steps * FINETUNE_EAGER_STEP_S + eval_steps * FINETUNE_EAGER_STEP_S / 3
    if ft["compile"] in (True, "auto"):  # on CUDA: compiled, so token-bound after compiling
        return [
            (f"fine-tune compile: {n_runs} processes", n_runs * FINETUNE_COMPILE_S, "estimate"),
            (f"fine-tune: {n_runs} runs, compiled", tokens / tokens_per_s, f"{steps:.0f} steps, token-bound"),
        ]
    how = f"{steps:.0f} train + {eval_steps:.0f} eval steps, eager (launch-bound {FINETUNE_EAGER_STEP_S * 1e3:.0f} ms)"
    return [(f"fine-tune: {n_runs} runs, eager", max(launch_s, tokens / tokens_per_s), how)]


def _tail_rows(config: dict[str, Any]) -> list[Row]:
    b = config["bench"]
    # null devices on the GPU machine this budget is for: cpu + cuda (gpus.bench_devices)
    devices = b["devices"] if b["devices"] is not None else ["cpu", "cuda"]
    bench_rows = len(b["formats"]) * len(b["batch_sizes"]) * len(devices)
    # deploy: a GGUF and an HF folder per twin, and the ternary twin's bitnet-format HF folder
    n_exports = 2 * len(config["variants"]) + ("ternary" in config["variants"])
    return [
        ("bench", bench_rows * b["budget_s"], f"<= {bench_rows} format x batch rows x budget_s"),
        (
            "deploy",
            n_exports * DEPLOY_S_PER_EXPORT,
            f"{n_exports} exports x {DEPLOY_S_PER_EXPORT:.0f} s (estimate)",
        ),
        (
            "report",
            len(NOTEBOOKS) * REPORT_S_PER_NOTEBOOK,
            f"{len(NOTEBOOKS)} notebooks x {REPORT_S_PER_NOTEBOOK:.0f} s (estimate)",
        ),
    ]


def stage_seconds(config: dict[str, Any], tokens_per_s: float) -> list[Row]:
    """(stage, seconds, how it was computed) for the whole preset at ``tokens_per_s`` training throughput."""
    config = resolve(config)
    return (
        _data_rows(config)
        + _pretrain_rows(config, tokens_per_s)
        + _finetune_rows(config, tokens_per_s)
        + _tail_rows(config)
    )


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


README_BEGIN = "<!-- budget: generated by `python -m ternarylm.budget --readme`; do not edit -->"
README_END = "<!-- budget: end -->"


def readme_block(config: dict[str, Any]) -> str:
    """The budget sentence of benchmarks/gpu/README.md, from the same numbers as docs/budget.md."""
    runs = pretrain_runs(config)
    (fast_name, fast), (_, slow) = list(THROUGHPUTS.items())[:2]
    ft = _finetune_rows(config, fast)
    return (
        f"{README_BEGIN}\nWhy 500k tokens/s: at that rate ({fast_name}) the whole paper preset "
        f"({len(runs)} pretraining runs, {sum(r['tokens'] for r in runs) / 1e9:.2f}B tokens, plus hub "
        f"downloads, tokenizing, compilation, checkpoints, evaluation, the fine-tunes ({ft[-1][0].split(': ')[1]}), the "
        f"bench, deploy and report) takes about {_hms(total_seconds(config, fast))} on one GPU; at the "
        f"seed's {slow / 1e3:.0f}k tokens/s about {_hms(total_seconds(config, slow))}. Per stage: "
        f"`docs/budget.md`.\n{README_END}"
    )


def update_readme(path: Path, config: dict[str, Any]) -> str:
    from ternarylm.io import UserError

    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise UserError(f"{path}: no budget block ({README_BEGIN} ... {README_END}) to regenerate")
    head, rest = text.split(README_BEGIN, 1)
    return head + readme_block(config) + rest.split(README_END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    from ternarylm.io import load_config, write_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--tokens-per-s", type=float, help="a measured training throughput (adds a column)")
    p.add_argument("--out", type=Path, help="write the Markdown page here (else print the table)")
    p.add_argument("--readme", type=Path, help="also regenerate the budget block of this README")
    args = p.parse_args(argv)
    config = load_config(args.config)
    tps = dict(THROUGHPUTS)
    if args.tokens_per_s:
        tps = {"measured": args.tokens_per_s, **tps}
    table = budget_markdown(config, tps)
    if args.readme:
        write_text(args.readme, update_readme(args.readme, config))
    if args.out is None:
        print(table, end="")
        return 0
    page = _PAGE.format(
        config=args.config, table=table, doc=__doc__.split("\n\n", 2)[2], assumptions=_assumptions()
    )
    write_text(args.out, page)
    return 0


def _assumptions() -> str:
    rows = [
        ("tokens per training document", TOKENS_PER_DOC, "estimate"),
        ("Shakespeare tokens", SHAKESPEARE_TOKENS, "estimate"),
        ("fine-tune train examples (GLUE)", FINETUNE_TRAIN_EXAMPLES, "GLUE"),
        ("fine-tune eval examples (dev, MRPC + labeled test)", FINETUNE_EVAL_EXAMPLES, "GLUE, MSR"),
        ("fine-tune tokens per example (padded)", FINETUNE_TOKENS_PER_EXAMPLE, "estimate"),
        ("eager fine-tune step, s (launch-bound)", FINETUNE_EAGER_STEP_S, "estimate"),
        ("fine-tune compile per process, s (only if finetune.compile is on)", FINETUNE_COMPILE_S, "estimate"),
        ("torch.compile per pretraining process, s", COMPILE_S, "estimate"),
        ("one checkpoint save, s", CKPT_S, "measured on a CPU machine's disk"),
        ("cost of a forward-only token vs a training token", round(EVAL_COST, 3), "estimate"),
        ("hub download per repo, MB", HUB_DOWNLOAD_MB, "estimate"),
        ("hub download rate, MB/s", DOWNLOAD_MB_PER_S, "target, unmeasured"),
        ("parquet -> arrow conversion, MB/s", ARROW_MB_PER_S, "estimate"),
        ("tokenize rate, tokens/s", TOKENIZE_TOKENS_PER_S, "target, unmeasured"),
        ("one deploy export, s", DEPLOY_S_PER_EXPORT, "estimate"),
        ("one report notebook, s", REPORT_S_PER_NOTEBOOK, "estimate"),
    ]
    return "\n".join(f"- {k}: `{v}` ({how})" for k, v, how in rows)


_PAGE = """# Time budget of the paper preset on one GPU

Generated by `python -m ternarylm.budget --config {config} --out docs/budget.md --readme
benchmarks/gpu/README.md` (rerun it after changing the config; `benchmarks/train_throughput.py`
prints the same projection from the throughput it measures). Nothing here is a GPU measurement:
no GPU has run this code yet. Both throughput columns are unmeasured here: the design's target
and the figure reported for the seed notebook.

{table}
{doc}
{assumptions}

The seed column runs this pipeline at the seed notebook's training throughput; only the
token-bound stages scale with it. Fine-tuning runs eager (`finetune.compile: false`) and is
launch-bound, so it does not; with `finetune.compile` on, the table shows a compile row per
process and token-bound steps instead.
"""

if __name__ == "__main__":
    raise SystemExit(main())
