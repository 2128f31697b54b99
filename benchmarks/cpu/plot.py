"""Draw the paper-size CPU benchmark (results.csv and env.json beside this script) as one figure.

    python benchmarks/cpu/plot.py                 # writes benchmarks/cpu/results.png and .pdf
    python benchmarks/cpu/plot.py --out DIR       # the same figure elsewhere

Three panels, one bar per twin x format: decode latency at batch 1 (median ms/token, error bar =
the interquartile range of the timed runs around the median, log scale: 3.5 to 395 ms), memory at
batch 1 (weight bytes beside the process's peak resident memory) and throughput at the largest
batch (tokens/s). Hatched bars are ``baseline`` rows (ternarylm.bench.row_role: the QAT checkpoint
run as float, the no-cache run), never the deployed model. The title names the device, its threads
and the model size, read from the files, not assumed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ternarylm.bench import row_role
from ternarylm.io import UserError, read_json
from ternarylm.layout import ROLE_COLUMN
from ternarylm.report.figures import COLORS, apply_style, save
from ternarylm.report.tables import MODEL_NAMES, normalize_bench

HERE = Path(__file__).resolve().parent
NAME = "results"  # figure file name: results.png / results.pdf beside results.csv
VERSIONS = {"torch": "torch", "llama_cpp": "llama-cpp-python"}  # env.json key -> package name


def load(csv_path: Path) -> pd.DataFrame:
    """results.csv, checked (ternarylm.report.tables.normalize_bench), with its role column."""
    if not csv_path.is_file():
        raise UserError(f"benchmark results not found: {csv_path}")
    df = normalize_bench(pd.read_csv(csv_path), csv_path)
    if ROLE_COLUMN not in df:  # files written before the role column: the bench's own rule
        df[ROLE_COLUMN] = [row_role(f, v, d) for f, v, d in zip(df["format"], df["variant"], df["device"])]
    # ternary rows first, each twin's formats fastest first (batch 1)
    b1 = df[df["batch"] == df["batch"].min()].set_index(["variant", "format"])["ms_per_token"]
    df["_order"] = [(v != "ternary", b1.get((v, f), np.inf)) for v, f in zip(df["variant"], df["format"])]
    return df.sort_values("_order", kind="stable").drop(columns="_order")


def title(df: pd.DataFrame, env: dict) -> str:
    n_params = df["n_params"].dropna().iat[0] / 1e6 if "n_params" in df else float("nan")
    threads = env.get("threads", df["threads"].dropna().iat[0] if "threads" in df else "?")
    cpu = " ".join(str(env[k]) for k in ("cpu_model", "cpu_capability") if env.get(k))
    versions = ", ".join(f"{name} {env[k]}" for k, name in VERSIONS.items() if env.get(k))
    device = str(env.get("device", df["device"].iat[0])).upper()
    return (
        f"Paper-size twins ({n_params:.1f}M parameters, random weights) on {device}: {cpu}, {threads} threads\n"
        f"{versions}; measured {str(env.get('date', ''))[:10]}"
    )


def _bars(ax, d: pd.DataFrame, col: str, *, err: str | None = None, offset: float = 0.0, pale: bool = False):
    """Horizontal bars of ``col`` per row of ``d`` (error bar: ``err`` / 2 each side), valued;
    a missing value (a format not run at this batch) leaves its row empty."""
    y = np.arange(len(d)) + offset
    colors = [COLORS.get(v, "grey") for v in d["variant"]]
    half = d[err].fillna(0).to_numpy() / 2 if err and err in d else np.zeros(len(d))
    height = 0.4 if offset else 0.8
    vals = d[col].to_numpy(dtype=float)
    bars = ax.barh(
        y,
        np.nan_to_num(vals),
        height,
        xerr=half if err else None,
        color=colors,
        alpha=0.4 if pale else 0.85,
        capsize=3,
    )
    for bar, role, v, h in zip(bars, d[ROLE_COLUMN], vals, half, strict=True):
        bar.set_gid(col)  # tests find each panel's bars by this id
        if role == "baseline":
            bar.set_hatch("///")
        if np.isfinite(v):
            text = f"{v:,.0f}" if v >= 100 else f"{v:.3g}"
            ax.annotate(text, (v + h, bar.get_y() + bar.get_height() / 2), xytext=(3, 0), **TEXT)
    return bars


TEXT = {"textcoords": "offset points", "va": "center", "fontsize": 7}


def plot(df: pd.DataFrame, env: dict) -> Figure:
    """The three panels of the module docstring."""
    small, large = df["batch"].min(), df["batch"].max()
    b1, bn = df[df["batch"] == small], df[df["batch"] == large]
    fig, axes = plt.subplots(1, 3, figsize=(16, 0.34 * len(b1) + 2.6))
    labels = [f"{MODEL_NAMES.get(v, v)} · {f}" for v, f in zip(b1["variant"], b1["format"])]
    ax = axes[0]
    _bars(ax, b1, "ms_per_token", err="ms_per_token_iqr")
    ax.set_xscale("log")
    ax.set(xlabel="decode latency (ms/token, log scale; median ± IQR/2)", title=f"Latency, batch {small}")
    ax = axes[1]
    _bars(ax, b1, "weight_mb", offset=-0.2)
    _bars(ax, b1, "peak_rss_mb", offset=0.2, pale=True)
    ax.set(xlabel="memory (MB = 10⁶ bytes)", title=f"Memory, batch {small}: weights (solid), peak RSS (pale)")
    ax = axes[2]
    bn = bn.set_index(["variant", "format"]).reindex(list(zip(b1["variant"], b1["format"]))).reset_index()
    bn[ROLE_COLUMN] = b1[ROLE_COLUMN].to_numpy()
    _bars(ax, bn, "tokens_per_s")
    ax.set(xlabel="throughput (tokens/s)", title=f"Throughput, batch {large}")
    for i, ax in enumerate(axes):
        ax.set_yticks(np.arange(len(b1)), labels if i == 0 else [""] * len(b1))
        ax.invert_yaxis()  # fastest ternary form on top
        ax.margins(x=0.15)
        ax.grid(axis="y", visible=False)
    handles = [Patch(color=COLORS[v], label=MODEL_NAMES[v] + " twin") for v in ("ternary", "fp32")]
    handles.append(
        Patch(facecolor="white", edgecolor="black", hatch="///", label="baseline (not a deployed form)")
    )
    fig.legend(handles=handles, loc="lower center", ncols=3, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title(df, env))
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--csv", type=Path, default=HERE / "results.csv")
    p.add_argument("--env", type=Path, default=HERE / "env.json", help="the bench's env.json (threads, CPU)")
    p.add_argument("--out", type=Path, default=HERE, help="folder for results.png and results.pdf")
    args = p.parse_args(argv)
    try:
        df = load(args.csv)
        env = read_json(args.env) if args.env.is_file() else {}
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    apply_style()
    for path in save(plot(df, env), args.out, NAME):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
