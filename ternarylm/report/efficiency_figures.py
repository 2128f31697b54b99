"""T6's figure: memory and per-token latency of the paper's FP32 / INT8 / Ternary columns beside ours
per bench device (split from figures.py along its seams, like efficiency_tables from tables)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ternarylm.report.figures import COLORS, LABELS

# --- T6: efficiency --------------------------------------------------------------------------------------


def plot_efficiency(t6: pd.DataFrame) -> Figure:
    """T6: memory and per-token latency of the FP32 / INT8 / Ternary columns, the paper's (GPU) and
    ours per bench device, each panel titled with its device kind (CPU/GPU).

    Memory: the paper's GPU inference memory; ours as weight bytes (solid) beside what the process
    adds (hatched: peak RSS above baseline, or torch's peak allocated GPU memory on a GPU).
    Latency: median ms/token, error bar = the interquartile range of the timed runs around it.
    """
    sources = list(dict.fromkeys(t6["device"]))
    fig, axes = plt.subplots(2, len(sources), figsize=(4.2 * len(sources) + 1, 7.0), squeeze=False)
    for j, src in enumerate(sources):
        g = t6[t6["device"] == src].set_index("column")
        keys = [k for k in ("fp32", "int8", "ternary") if k in g.index]
        paper = src == "paper"
        ticks = [
            LABELS[k] + ("" if paper or pd.isna(g.at[k, "format"]) else f"\n{g.at[k, 'format']}")
            for k in keys
        ]
        _memory_bars(axes[0, j], g, keys, ticks, paper)
        _latency_bars(axes[1, j], g, keys, ticks, paper)
        kind = g["device_kind"].iat[0]
        threads = g["threads"].dropna()
        n = int(threads.iat[0]) if kind == "CPU" and not threads.empty else 0
        on = f"{kind}, {n} thread{'s' if n > 1 else ''}" if n else kind
        axes[0, j].set_title("paper (GPU, cited)" if paper else f"ours on {src} ({on})")
    fig.suptitle("Inference memory and per-token decode latency (batch 1)")
    fig.tight_layout()
    return fig


def _annotate(ax, bars, vals: Sequence[float], above: Sequence[float] | None = None) -> None:
    """Each bar's value over it (``above``: extra height per bar, e.g. its error bar's)."""
    above = [0.0] * len(vals) if above is None else above
    for bar, v, up in zip(bars, vals, above, strict=True):
        text = "not run" if math.isnan(v) else f"{v:.4g}"
        xy = (bar.get_x() + bar.get_width() / 2, bar.get_height() + up)
        ax.annotate(text, xy, ha="center", va="bottom", fontsize=7)


def _values(g: pd.DataFrame, keys: Sequence[str], col: str) -> list[float]:
    return [float(g.at[k, col]) if col in g and pd.notna(g.at[k, col]) else math.nan for k in keys]


def _memory_bars(ax, g: pd.DataFrame, keys: list[str], ticks: list[str], paper: bool) -> None:
    x = np.arange(len(keys))
    colors = [COLORS[k] for k in keys]
    if paper:
        vals = _values(g, keys, "inference_mb")
        _annotate(ax, ax.bar(x, np.nan_to_num(vals), color=colors, hatch="//", alpha=0.85), vals)
        ax.set_ylabel("GPU inference memory (MB)")
    else:
        handles = []
        gpu = "gpu_peak_mb" in g and g["gpu_peak_mb"].notna().any()
        extra, what = (
            ("gpu_peak_mb", "GPU peak allocated")
            if gpu
            else ("process_mb", "process peak RSS above baseline")
        )
        for i, (col, hatch, alpha) in enumerate((("weight_mb", None, 0.85), (extra, "xx", 0.35))):
            vals = _values(g, keys, col)
            bars = ax.bar(x - 0.2 + 0.4 * i, np.nan_to_num(vals), 0.4, color=colors, hatch=hatch, alpha=alpha)
            _annotate(ax, bars, vals)
            handles.append(
                Patch(facecolor="lightgrey", hatch=hatch, label="weights" if col == "weight_mb" else what)
            )
        ax.set_ylabel("memory (MB)")
        ax.legend(handles=handles, fontsize=7, loc="upper right")
    ax.set_xticks(x, ticks)
    ax.tick_params(axis="x", labelsize=8)
    ax.margins(y=0.35)  # room for the legend above the tallest bar and its value


def _latency_bars(ax, g: pd.DataFrame, keys: list[str], ticks: list[str], paper: bool) -> None:
    vals = _values(g, keys, "ms_per_token")
    iqr = np.nan_to_num(_values(g, keys, "ms_per_token_iqr"))
    bars = ax.bar(
        ticks,
        np.nan_to_num(vals),
        color=[COLORS[k] for k in keys],
        hatch="//" if paper else None,
        alpha=0.85,
        yerr=None if paper else iqr / 2,
        capsize=4,
        gid="latency",
    )
    _annotate(ax, bars, vals, None if paper else iqr / 2)
    ax.set_ylabel("latency (ms/token)" + ("" if paper else ", median ± IQR/2"))
    ax.tick_params(axis="x", labelsize=8)
    ax.margins(y=0.15)
