"""Table builders: T1-T6 and the F1/F2/F3 data, each a DataFrame read from the artifacts.

Numbers are mean ± sample std (ddof=1) over seeds; a stage the config does not run is "not run".
This module holds the pretraining and fine-tuning tables; T6 is in ``efficiency_tables``, F2 in
``sparsity_tables``, the shared ``Stat``/``aggregate``/``write_table`` in ``tablekit``; all are
re-exported here, so ``tables.t6_efficiency`` and the like keep working.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ternarylm.layout import NONCAUSAL, SCRATCH
from ternarylm.report.artifacts import Artifacts, require
from ternarylm.report.efficiency_tables import (  # noqa: F401  (re-exported)
    BENCH_COLUMNS,
    bench_all,
    bench_table,
    device_kind,
    normalize_bench,
    pick_rows,
    t6_efficiency,
)
from ternarylm.report.paper import (
    CITED_GLUE,
    NOT_RUN,
    PAPER,
    TASK_METRIC,
    TASK_PAPER_KEY,
    VARIANT_NAMES,
)
from ternarylm.report.paper_notes import setup_value
from ternarylm.report.sparsity_tables import (  # noqa: F401  (re-exported)
    gaussian_zero_pct,
    paper_layer_at_depth,
    sparsity_layers,
    sparsity_long,
    sparsity_modules,
)
from ternarylm.report.tablekit import Stat, aggregate, write_table  # noqa: F401  (re-exported)

# what the tables and figures call each pretrained model / fine-tuning backbone (twins and controls)
MODEL_NAMES = VARIANT_NAMES | {NONCAUSAL: "FP32, no causal mask", SCRATCH: "random init (scratch)"}
# the kind of each row of T3/T4/T5: the two twins are the reproduction, the controls explain it
CONTROL_NOTES = {
    NONCAUSAL: "control: FP32 twin without the causal mask (the authors' notebook baseline)",
    SCRATCH: "control: same architecture fine-tuned from random init, never pretrained",
}

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
    vocab = art.tokenizer_vocab()  # the real size: a small corpus can fill fewer than vocab_size
    tok_cfg = art.cfg.get("tokenizer") or {}
    requested = (
        f"pretrained {tok_cfg['pretrained']}" if tok_cfg.get("pretrained") else tok_cfg.get("vocab_size")
    )
    cols: dict[str, dict[str, Any]] = {}
    tokens = art.token_counts(art.main)  # the data scale, beside the document count
    for corpus, v, s in ((art.main, v, art.seeds[0]) for v in art.variants):
        meta = art.read_json(art.model_file(corpus, v, s, "config.json"))
        m, t = meta["model"], meta.get("train") or art.cfg["train"]
        counts = param_counts(safetensors_shapes(art.model_file(corpus, v, s, "model.safetensors")), m, v)
        cols[VARIANT_NAMES.get(v, v)] = {
            "parameters (M)": round(counts["total"] / 1e6, 2),
            "ternary parameters (M)": round(counts["ternary"] / 1e6, 2),
            "full-precision parameters (M)": round(counts["full_precision"] / 1e6, 2),
            "d_model": m["d_model"],
            "layers": m["n_layers"],
            "heads": m["n_heads"],
            "FFN hidden (SwiGLU)": m["ffn_hidden"],
            # the config's request, not the model's: the model is sized to the tokenizer actually built
            "vocab (requested vocab_size)": requested,
            "vocab (tokenizer.json entries)": vocab,
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
            "train tokens": tokens["train"],
            "val tokens": tokens["val"],
        }
    paper = {
        "parameters (M)": setup["params_m"],
        "d_model": setup["d_model"],
        "layers": setup["n_layers"],
        "heads": setup["n_heads"],
        "vocab (requested vocab_size)": setup["vocab_size"],
        "vocab (tokenizer.json entries)": setup["vocab_size"],
        "epochs": setup["epochs"],
        "corpus": setup["corpus"],
        "train documents": setup["train_docs"],
        # settings the paper text does not state: labelled with where they are stated (paper_notes)
        "sequence length": setup_value("seq_len"),
        "batch (sequences)": setup_value("batch_size"),
        "optimizer": f"lr {setup_value('lr')}",
        "schedule": f"OneCycle, warm-up {setup_value('warmup_frac')}",
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


def pretrain_variants(art: Artifacts) -> list[str]:
    """The twins, then the fp32-noncausal control when the config runs it (T3, F3)."""
    return art.variants + ([NONCAUSAL] if art.noncausal_runs() else [])


T3_LOSSES = (
    "train_ce",
    "val_ce",
    "train_ce_smoothed",
    "val_ce_smoothed",
    "loss_ratio",
    "loss_ratio_smoothed",
)


def t3_loss_ratio(art: Artifacts) -> pd.DataFrame:
    """T3: eval-mode train/val loss and their ratio per twin (and the fp32-noncausal control),
    label-smoothed and plain, mean ± std over seeds. F3's ratio panel draws these numbers."""
    ev = art.eval_table(art.main_runs() + art.noncausal_runs())
    rows = []
    for v in pretrain_variants(art):
        g = ev[ev["variant"] == v]
        stats = {k: Stat.of(g[k]) if k in g else Stat.of([]) for k in T3_LOSSES}
        rows.append(
            {
                "variant": v,
                "model": MODEL_NAMES.get(v, v),
                "kind": CONTROL_NOTES.get(v, "twin"),
                **{f"{k}_mean": s.mean for k, s in stats.items()},
                **{f"{k}_std": s.std for k, s in stats.items()},
                "n_seeds": stats["loss_ratio"].n,
                "train_loss_smoothed": stats["train_ce_smoothed"].fmt(3),
                "val_loss_smoothed": stats["val_ce_smoothed"].fmt(3),
                "loss_ratio_smoothed": stats["loss_ratio_smoothed"].fmt(3),
                "train_loss": stats["train_ce"].fmt(3),
                "val_loss": stats["val_ce"].fmt(3),
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
    """F3: training-log train/val loss per logged step of every main run and the fp32-noncausal
    control (long format)."""
    runs = art.main_runs() + art.noncausal_runs()
    return pd.concat([art.metrics(*r) for r in runs], ignore_index=True)


# --- tables: fine-tuning (T4, T5) -----------------------------------------------------------------


def finetune_table(art: Artifacts) -> pd.DataFrame:
    """One row per task x backbone (twins, then the scratch control) x seed x split: accuracy, F1,
    MCC and the majority baseline."""
    rows = []
    for t in art.tasks:
        for v in art.backbones:
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
    """T4/T5: ours (mean ± std per twin), the scratch control when run, the measured majority
    baseline and cited rows."""
    ft = finetune_table(art) if ft is None else ft
    rows = []
    for t in tasks:
        # MCC beside every task score: it is 0 for the majority class, which F1/accuracy are not
        metrics = list(dict.fromkeys((["f1", "accuracy"] if t == "mrpc" else [TASK_METRIC[t]]) + ["mcc"]))
        if t not in art.tasks:
            rows.append(
                {"task": t, "model": "TernaryLM (ours)", "kind": NOT_RUN, "note": "not in finetune.tasks"}
            )
            continue
        for split in ("dev", "test"):
            g = ft[(ft["task"] == t) & (ft["split"] == split)]
            if g.empty:
                continue
            for v in art.backbones:
                gv = g[g["variant"] == v]
                row = {
                    "task": t,
                    "split": split,
                    "model": f"{MODEL_NAMES[v]} twin (ours)" if v in art.variants else MODEL_NAMES[v],
                    "kind": "measured",
                    "note": CONTROL_NOTES.get(v, ""),
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
        c = PAPER[TASK_PAPER_KEY[t]]
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
    """Per-epoch fine-tuning curves of every task x backbone x seed (long format)."""
    frames = [art.finetune_curve(t, v, s) for t in art.tasks for v in art.backbones for s in art.seeds]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def paper_task_values(tasks: Sequence[str]) -> dict[str, float]:
    """The paper's value of each task's primary metric (MRPC F1 82.47, ...): the curves' reference line."""
    return {t: float(PAPER[TASK_PAPER_KEY[t]].value) for t in tasks if t in TASK_PAPER_KEY}
