"""Plot style and the paper's figures (F1, F2, F3) plus the report's extra figures.

One colour per twin everywhere (ternary vermillion, FP32 blue; Okabe-Ito, colour-blind safe),
paper values in black markers, seeds as mean ± std bands or error bars. :func:`save` writes
PNG and PDF atomically. No torch import (report environment).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ternarylm.io import atomic_path
from ternarylm.report.paper import CORPUS_NAMES, METRIC_NAMES, TASK_NAMES, VARIANT_NAMES

COLORS = {
    "ternary": "#D55E00",
    "fp32": "#0072B2",
    "int8": "#009E73",
    "paper": "#000000",
    "baseline": "#7F7F7F",
}
CORPUS_COLORS = {
    "tinystories": "#CC79A7",
    "writingprompts": "#009E73",
    "shakespeare": "#E69F00",
    "synthetic": "#56B4E9",
}
LABELS = VARIANT_NAMES | {"int8": "INT8"}  # the INT8 column of T6 is a format, not a twin
CORPUS_LABELS = CORPUS_NAMES
LOSS_LABEL = "loss (label-smoothed CE, nats/token)"


def apply_style() -> None:
    """Readable defaults for every report figure."""
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 160,
            "savefig.bbox": "tight",
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "pdf.fonttype": 42,
        }
    )


def save(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``out_dir/name.png`` and ``.pdf`` atomically; returns both paths."""
    paths = []
    for ext in ("png", "pdf"):
        path = Path(out_dir) / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext)
        paths.append(path)
    return paths


def seed_band(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Mean, std (ddof=1, 0 for one seed) and count of ``y`` per ``x`` across seeds."""
    g = df.dropna(subset=[y]).groupby(x)[y]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "n": g.count()})
    return out.reset_index()


def band(ax, x, mean, std, *, color: str, label: str, ls: str = "-", marker: str | None = None) -> None:
    """A line with a shaded ± std band."""
    x, mean, std = np.asarray(x, float), np.asarray(mean, float), np.asarray(std, float)
    ax.plot(x, mean, color=color, ls=ls, marker=marker, ms=4, lw=1.6, label=label)
    if np.any(std > 0):
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, lw=0)


def _seeds_note(n: int) -> str:
    return f"mean ± std over {n} seeds" if n > 1 else "1 seed"


# --- F3: train vs val loss ------------------------------------------------------------------------


def plot_train_val(curves: pd.DataFrame, corpus: str) -> Figure:
    """F3: training and validation loss vs epoch for both twins; right: val/train ratio."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    n_seeds = int(curves.groupby("variant")["seed"].nunique().min())
    for v, g in curves.groupby("variant", sort=False):
        epoch = g.groupby("step")["epoch"].first()
        c = COLORS.get(v, "grey")
        for col, ls, what in (("train_loss", "-", "train"), ("val_loss", "--", "val")):
            b = seed_band(g, "step", col)
            band(
                ax,
                epoch.loc[b["step"]],
                b["mean"],
                b["std"],
                color=c,
                ls=ls,
                label=f"{LABELS.get(v, v)} {what}",
            )
        r = g.assign(ratio=g["val_loss"] / g["train_loss"])
        b = seed_band(r, "step", "ratio")
        band(ax2, epoch.loc[b["step"]], b["mean"], b["std"], color=c, label=LABELS.get(v, v))
    ax.set(xlabel="epoch", ylabel=LOSS_LABEL)
    ax.set_title(f"Train vs validation loss on {CORPUS_LABELS.get(corpus, corpus)} ({_seeds_note(n_seeds)})")
    ax.legend(ncols=2, handlelength=3)
    ax2.axhline(1.0, color=COLORS["baseline"], lw=1, ls=":")
    ax2.set(xlabel="epoch", ylabel="val loss / train loss")
    ax2.set_title("Generalization gap (1 = no gap)")
    ax2.legend()
    fig.tight_layout()
    return fig


# --- F1: convergence ---------------------------------------------------------------------------------


def plot_convergence(
    steps: pd.DataFrame, epochs: pd.DataFrame, finals: pd.DataFrame, paper_epochs: int, not_run: Sequence[str]
) -> Figure:
    """F1: training loss vs epoch per corpus (logged values thin, epoch averages with markers).

    ``steps``: metrics rows (corpus, variant, seed, epoch, train_loss); ``epochs``: per-epoch
    averages; ``finals``: the final-loss table with ``paper_final_loss``.
    """
    fig, ax = plt.subplots(figsize=(10, 4.6))
    n_seeds = int(epochs.groupby(["corpus", "variant"])["seed"].nunique().min())
    for (corpus, v), g in epochs.groupby(["corpus", "variant"], sort=False):
        c = CORPUS_COLORS.get(corpus, "grey")
        ls = "-" if v == "ternary" else "--"
        name = CORPUS_LABELS.get(corpus, corpus) + ("" if v == "ternary" else f" ({LABELS.get(v, v)})")
        s = steps[(steps["corpus"] == corpus) & (steps["variant"] == v)]
        fine = seed_band(s, "epoch", "train_loss")
        ax.plot(fine["epoch"], fine["mean"], color=c, lw=0.8, alpha=0.45, ls=ls)
        b = seed_band(g, "epoch", "train_loss")
        band(ax, b["epoch"], b["mean"], b["std"], color=c, ls=ls, marker="o", label=f"{name}: epoch average")
    paper = finals.dropna(subset=["paper_final_loss"]).drop_duplicates("corpus")
    for _, r in paper.iterrows():
        run = r["corpus"] not in set(not_run)
        c = CORPUS_COLORS.get(r["corpus"], "grey")
        ax.plot(
            [paper_epochs],
            [r["paper_final_loss"]],
            marker="*",
            ms=13,
            ls="none",
            color=c if run else "white",
            markeredgecolor=COLORS["paper"],
            label=f"paper final, {CORPUS_LABELS.get(r['corpus'], r['corpus'])}"
            + ("" if run else " (not run here)"),
        )
        ax.annotate(
            f"{r['paper_final_loss']:.2f}",
            (paper_epochs, r["paper_final_loss"]),
            xytext=(9, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set(xlabel="epoch", ylabel=f"training {LOSS_LABEL}")
    ax.set_xlim(0, paper_epochs + 1.5)
    ax.set_title(f"Training convergence per corpus ({_seeds_note(n_seeds)}; thin: logged values)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if not_run:
        ax.text(
            1.01,
            0.0,
            "not run here:\n" + "\n".join(CORPUS_LABELS.get(c, c) for c in not_run),
            transform=ax.transAxes,
            fontsize=8,
            color=COLORS["baseline"],
            va="bottom",
        )
    fig.tight_layout()
    return fig


# --- F2: sparsity ---------------------------------------------------------------------------------------


def plot_sparsity(layers: pd.DataFrame, paper_n_layers: int) -> Figure:
    """F2: zero ternary codes per layer, both twins (fp32 = what absmean would give), paper overlaid."""
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(10, 4.8))
    names = list(dict.fromkeys(layers.sort_values("layer_index")["layer"]))
    x = np.arange(len(names))
    variants = sorted(dict.fromkeys(layers["variant"]), key=lambda v: (v != "ternary", v))
    width = 0.8 / max(len(variants), 1)
    n_seeds = int(layers["n"].min())
    handles = []
    for i, v in enumerate(variants):
        g = layers[layers["variant"] == v].set_index("layer").reindex(names)
        pos = x - 0.4 + width * (i + 0.5)
        color, alpha = COLORS.get(v, "grey"), 0.9 if v == "ternary" else 0.5
        bars = ax.bar(
            pos,
            g["zero_pct_mean"],
            width,
            yerr=g["zero_pct_std"].fillna(0),
            color=color,
            alpha=alpha,
            capsize=2,
        )
        label = LABELS.get(v, v) + (
            " twin (control: absmean applied to its fp32 weights)" if v == "fp32" else " twin"
        )
        handles.append(Patch(color=color, alpha=alpha, label=label))
        for bar, q in zip(bars, g["quantized"], strict=True):
            if not bool(q) and v == "ternary":
                bar.set_hatch("///")
                bar.set_alpha(0.4)
    if "Emb" in names and "ternary" in variants:
        handles.append(
            Patch(
                facecolor=COLORS["ternary"],
                alpha=0.4,
                hatch="///",
                label="Emb: not ternarized in our model (what-if)",
            )
        )
    n_layers = sum(1 for n in names if n.startswith("L"))
    paper = layers.dropna(subset=["paper_zero_pct"]).drop_duplicates("layer").set_index("layer")
    paper = paper.reindex(names)["paper_zero_pct"]
    if n_layers == paper_n_layers and paper.notna().any():
        (line,) = ax.plot(x, paper, color=COLORS["paper"], marker="D", ms=5, lw=1, label="paper (ternary)")
        handles.insert(0, line)
        note = ""
    else:
        note = f"\npaper values not overlaid: this model has {n_layers} layers, the paper's {paper_n_layers}"
    ax.set_xticks(x, names)
    ax.set(xlabel="layer (Emb = token embedding)", ylabel="zero ternary codes (% of weights)")
    ax.set_ylim(0, max(70, float(np.nanmax(layers["zero_pct_mean"])) + 8))
    ax.set_title(f"Layer-wise sparsity: zero ternary weights ({_seeds_note(n_seeds)}){note}")
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, fontsize=8, frameon=False
    )
    fig.tight_layout()
    return fig


def plot_sparsity_modules(modules: pd.DataFrame) -> Figure:
    """Heatmaps of zero % per layer x module, one panel per twin, shared colour scale."""
    variants = list(dict.fromkeys(modules["variant"]))
    fig, axes = plt.subplots(
        1, len(variants), figsize=(4.8 * len(variants), 0.35 * modules["layer"].nunique() + 2)
    )
    axes = np.atleast_1d(axes)
    vmin, vmax = float(modules["zero_pct_mean"].min()), float(modules["zero_pct_mean"].max())
    im = None
    for ax, v in zip(axes, variants, strict=True):
        g = modules[modules["variant"] == v]
        piv = g.pivot_table(index="layer_index", columns="module", values="zero_pct_mean")
        order = [m for m in ("q", "k", "v", "o", "gate", "up", "down") if m in piv.columns]
        piv = piv[order]
        im = ax.imshow(piv.to_numpy(), aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
        ax.set_xticks(range(len(order)), order)
        ax.set_yticks(range(len(piv.index)), [f"L{i}" for i in piv.index])
        ax.grid(False)
        for (r, c), val in np.ndenumerate(piv.to_numpy()):
            ax.text(
                c,
                r,
                f"{val:.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if val < 0.5 * (vmin + vmax) else "black",
            )
        title = LABELS.get(v, v) + (" (control)" if v == "fp32" else "")
        ax.set(xlabel="projection", title=f"{title}: zero codes (%)")
    axes[0].set_ylabel("layer")
    fig.colorbar(im, ax=list(axes), label="zero ternary codes (% of weights)", shrink=0.85)
    return fig


# --- T6: efficiency --------------------------------------------------------------------------------------


def plot_efficiency(t6: pd.DataFrame) -> Figure:
    """Memory (MB) and latency (ms/token) for FP32 / INT8 / Ternary: the paper's and ours per device."""
    sources = list(dict.fromkeys(t6["device"]))
    fig, axes = plt.subplots(2, len(sources), figsize=(3.8 * len(sources) + 1, 6.6), squeeze=False)
    for j, src in enumerate(sources):
        paper = src.startswith("paper")
        g = t6[t6["device"] == src].set_index("column")
        keys = [k for k in ("fp32", "int8", "ternary") if k in g.index]
        ticks = [
            LABELS[k] + ("" if paper or pd.isna(g.at[k, "format"]) else f"\n{g.at[k, 'format']}")
            for k in keys
        ]
        for i, col in enumerate(("memory_mb", "ms_per_token")):
            ax = axes[i, j]
            vals = [float(g.at[k, col]) if pd.notna(g.at[k, col]) else math.nan for k in keys]
            bars = ax.bar(
                ticks,
                [0 if math.isnan(v) else v for v in vals],
                color=[COLORS[k] for k in keys],
                hatch="//" if paper else None,
                alpha=0.85,
            )
            for bar, v in zip(bars, vals, strict=True):
                text = "not run" if math.isnan(v) else f"{v:.4g}"
                x = bar.get_x() + bar.get_width() / 2
                ax.annotate(text, (x, bar.get_height()), ha="center", va="bottom", fontsize=8)
            if col == "memory_mb":
                ax.set_ylabel("inference memory (MB)" if paper else "weights (MB)")
            else:
                ax.set_ylabel("latency (ms/token)")
            ax.tick_params(axis="x", labelsize=8)
            ax.margins(y=0.15)
            if i == 0:
                ax.set_title("paper (GPU, cited)" if paper else f"ours on {src}")
    fig.suptitle("Inference memory and per-token decode latency (batch 1)")
    fig.tight_layout()
    return fig


# --- fine-tuning curves -------------------------------------------------------------------------------------


def plot_finetune_curves(curves: pd.DataFrame, metric: dict[str, str], baseline: dict[str, float]) -> Figure:
    """Per task: losses vs epoch (left) and the dev primary metric vs epoch with the majority baseline."""
    tasks = list(dict.fromkeys(curves["task"]))
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.4 * len(tasks)), squeeze=False)
    for i, t in enumerate(tasks):
        g = curves[curves["task"] == t]
        n_seeds = int(g.groupby("variant")["seed"].nunique().min())
        ax, ax2 = axes[i]
        for v, gv in g.groupby("variant", sort=False):
            c = COLORS.get(v, "grey")
            for col, ls in (("train_loss", "-"), ("heldout_loss", "--"), ("dev_loss", ":")):
                if col in gv.columns and gv[col].notna().any():
                    b = seed_band(gv, "epoch", col)
                    band(
                        ax,
                        b["epoch"],
                        b["mean"],
                        b["std"],
                        color=c,
                        ls=ls,
                        marker="o",
                        label=f"{LABELS.get(v, v)} {col.replace('_loss', '')}",
                    )
            col = f"dev_{metric[t]}"
            if col in gv.columns and gv[col].notna().any():
                b = seed_band(gv, "epoch", col)
                band(ax2, b["epoch"], b["mean"], b["std"], color=c, marker="o", label=LABELS.get(v, v))
        if t in baseline and not math.isnan(baseline[t]):
            ax2.axhline(baseline[t], color=COLORS["baseline"], ls="--", lw=1.2, label="majority class")
        name = TASK_NAMES.get(t, t)
        ax.set(
            xlabel="epoch",
            ylabel="cross-entropy (nats)",
            title=f"{name}: fine-tuning losses ({_seeds_note(n_seeds)})",
        )
        mname = METRIC_NAMES.get(metric[t], metric[t]) + (" x 100" if metric[t] == "mcc" else "")
        ax2.set(xlabel="epoch", ylabel=f"dev {mname} (%)", title=f"{name}: dev {mname} per epoch")
        ax.legend(fontsize=7, ncols=2, handlelength=3.5)
        ax2.legend(fontsize=8)
        for a in (ax, ax2):
            a.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=list(COLORS.values()))
