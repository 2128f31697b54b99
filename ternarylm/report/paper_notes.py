"""What the claims page prints about ternarylm/report/paper.py: each tolerance's one-line reason,
and the cited values as a reader wants them (units, thousands separators, no Python dicts).

paper.py keeps the numbers (one source); this module keeps the words the page shows beside them.
tests/test_paper_notes.py checks that every tolerance has its reason and every cited value a form.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ternarylm.report.paper import CITED_GLUE, METRIC_NAMES, SANH, SEED_README, TASK_NAMES, TOLERANCE
from ternarylm.report.paper import PAPER as CITED

# one line per TOLERANCE key: why that width (the long form is the comment in paper.py)
TOLERANCE_REASONS: dict[str, str] = {
    "min_repeats": "timed runs each latency row needs: one timing has no spread, so parity and a 10 % gap "
    "look alike",
    "latency_iqr_frac": "largest interquartile range of ms/token, as a fraction of the latency tolerance: a "
    "spread as wide as the band cannot tell parity from a gap",
    "ppl_rel": "perplexity within this fraction of the paper's: its seed spread is 0.3 %, the rest allows "
    "another tokenizer build and data cut",
    "metric_abs": "GLUE metric within this many points: MRPC dev has 408 pairs, a handful flipped moves it ~1",
    "ratio_rel": "train/val loss ratio within this fraction: wide for noise, far too narrow to confuse 1.05 "
    "with 3.51",
    "loss_rel": "final training loss within this fraction (as perplexity)",
    "sparsity_pp": "zero fraction within this many percentage points: the paper gives whole percents",
    "memory_rel": "memory reduction within this fraction of 2.4×, both ways: a ratio of weight bytes "
    "(4–16×) cannot pass for it",
    "latency_rel": "ternary/FP32 latency within this fraction of 1 (paper 0.988); much faster is not parity",
    "seed_k": "an inequality claim must hold by more than this many standard deviations over seeds",
    "min_margin": "… and by at least this many points (one flipped MRPC pair is 0.25 accuracy points)",
    "reg_gap_frac": "our FP32-minus-ternary ratio gap must reach this share of the paper's (2.46)",
    "ppl_parity_rel": "ternary vs FP32 perplexity within this fraction per seed pair, both ways (BitNet "
    "b1.58: +4.4 % at 700M)",
    "ppl_std_factor": "cross-seed std within this factor of 0.17, both ways: 3 seeds give a 95 % interval "
    "of about ×0.5–×4.4",
    "min_std_seeds": "a standard deviation is judged only from at least this many seeds",
    "data_factor_rel": "the 55× data factor within this fraction: words (DistilBERT) vs WordPiece tokens "
    "(ours, 1.2–1.3 per word)",
    "collapse_frac": "the no-causal-mask control 'collapses' when its train CE is at most this share of "
    "the causal twin's",
}

# the unit a cited value is in (key of paper.PAPER); absent: a plain number
UNITS: dict[str, str] = {
    "memory_mb": "MB",
    "latency_ms": "ms/token",
    "memory_reduction": "×",
    "loss_ratio": "×",
    "data_factor": "×",
    "distilbert_words": "words",
    "sparsity_pct": "%",
    "final_loss": "nats/token",
}
SOURCE_NAMES = {SEED_README: "authors' README", SANH: "Sanh et al. 2019"}

# Where each value of PAPER["setup"] is stated: the one place that says which settings are the
# paper's, which the authors' notebook's (TernaryLM-132M.ipynb @71bbcca) and which their README's.
# The audit behind it is docs/claims.md, "Setup choices" (paper text "n/c" = not confirmed there);
# T1 and the claims page take their labels from here, tests/test_report_pages.py checks the docs.
IN_PAPER, IN_NOTEBOOK, IN_README = "paper", "authors' notebook", "authors' README"
SETUP_ORIGIN: dict[str, str] = {
    "params_m": IN_PAPER,
    "d_model": IN_PAPER,
    "n_layers": IN_PAPER,
    "n_heads": IN_PAPER,
    "vocab_size": IN_PAPER,
    "corpus": IN_PAPER,
    "train_docs": IN_PAPER,
    "epochs": IN_PAPER,
    "tokenizer": IN_PAPER,
    "seq_len": IN_NOTEBOOK,  # training windows of 128 tokens (the README says 512)
    "batch_size": IN_README,  # 64 (at 512 tokens); the notebook's batch is 32
    "lr": IN_NOTEBOOK,  # peak 3e-4 (the README says 1e-3)
    "warmup_frac": IN_NOTEBOOK,  # OneCycleLR pct_start 0.1
    "val_docs": IN_NOTEBOOK,  # first 2,000 validation stories
    "device": IN_README,  # dual T4 GPUs
    "quantize": IN_PAPER,  # every linear layer of the blocks is ternary
    "act_bits": IN_PAPER,  # 8-bit per-token activations
    "label_smoothing": IN_NOTEBOOK,  # CE with label smoothing 0.1 (the source cited in paper.py)
}


def setup_value(key: str) -> str:
    """A PAPER["setup"] value with where it is stated, unless that is the paper itself."""
    v = number(CITED["setup"].value[key])
    origin = SETUP_ORIGIN[key]
    return v if origin == IN_PAPER else f"{v} ({origin})"


def number(v: Any) -> str:
    """3300000000 -> "3,300,000,000"; 0.0003 -> "0.0003"; 58.42 -> "58.42"; ["q", "k"] -> "q, k"."""
    if isinstance(v, list | tuple):
        return ", ".join(number(x) for x in v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    return f"{v:g}"


def cited_value(key: str, value: Any) -> str:
    """A cited value in words: "ternary 1.05 ×, fp32 3.51 ×"; lists joined; the unit once."""
    unit = UNITS.get(key, "")
    sep = "" if unit in ("%", "") else " "
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            # a list of numbers is a range (60-62), of names an enumeration
            numeric = isinstance(v, list) and all(isinstance(x, int | float) for x in v)
            shown = (
                "–".join(map(number, v))
                if numeric
                else ", ".join(map(number, v))
                if isinstance(v, list)
                else number(v)
            )
            parts.append(f"{k} {shown}")
        return "; ".join(parts) + (f" ({unit})" if unit else "")
    return f"{number(value)}{sep}{unit}"


def cited_table() -> pd.DataFrame:
    """Every cited number with its source: PAPER's entries, then the cited GLUE rows (each named by
    model, task, metric and source, so two "BERT-base MRPC" rows cannot look alike)."""
    rows = [
        {"key": k.replace("_", " "), "value": cited_value(k, c.value), "source": c.source, "note": c.note}
        for k, c in CITED.items()
    ]
    setup = next(r for r in rows if r["key"] == "setup")
    setup["value"] = "; ".join(f"{k} {setup_value(k)}" for k in CITED["setup"].value)
    for r in CITED_GLUE:
        metric = METRIC_NAMES[r["metric"]] if r["metric"] else "metric not stated (F1/accuracy)"
        src = SOURCE_NAMES.get(r["source"], r["source"])
        rows.append(
            {
                "key": f"{r['model']} {TASK_NAMES[r['task']]} {metric}, {src}",
                "value": number(r["value"]),
                "source": r["source"],
                "note": "cited, never measured here",
            }
        )
    return pd.DataFrame(rows)


def tolerance_table() -> pd.DataFrame:
    return pd.DataFrame(
        [{"tolerance": k, "value": number(v), "why": TOLERANCE_REASONS[k]} for k, v in TOLERANCE.items()]
    )
