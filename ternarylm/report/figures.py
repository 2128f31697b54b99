"""Plot style and the paper's figures (F1, F2, F3) plus the report's extra figures.

One colour per twin everywhere (ternary vermillion, FP32 blue; Okabe-Ito, colour-blind safe), the
controls beside them (FP32 without causal mask sky blue dash-dot, scratch fine-tune grey dashed),
paper values in black, seeds as mean ± std bands or error bars. :func:`save` writes PNG and PDF
atomically. No torch import (report environment).
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ternarylm.io import atomic_path
from ternarylm.report.formats import NONCAUSAL, SCRATCH
from ternarylm.report.paper import CORPUS_NAMES, METRIC_NAMES, TASK_NAMES
from ternarylm.report.tables import MODEL_NAMES

COLORS = {
    "ternary": "#D55E00",
    "fp32": "#0072B2",
    "int8": "#009E73",
    "paper": "#000000",
    "baseline": "#7F7F7F",
    NONCAUSAL: "#56B4E9",
    SCRATCH: "#999999",
}
# line style of each model in curves: controls are drawn apart from the twins
LINESTYLES = {NONCAUSAL: "-.", SCRATCH: "--"}
CORPUS_COLORS = {
    "tinystories": "#CC79A7",
    "writingprompts": "#009E73",
    "shakespeare": "#E69F00",
    "synthetic": "#56B4E9",
}
LABELS = MODEL_NAMES | {"int8": "INT8"}  # the INT8 column of T6 is a format, not a twin
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


def save(fig: Figure, out_dir: str | Path, name: str, caption: str | None = None) -> list[Path]:
    """Write ``out_dir/name.png`` and ``.pdf`` atomically; returns both paths.

    ``caption`` (the notebook's Markdown caption) is drawn under the figure, so a PNG that leaves
    its page (the committed figures, a slide) still says what it shows. ``bbox_inches="tight"``
    keeps the legends placed outside the axes and the caption inside the file."""
    if caption:
        width = int(fig.get_figwidth() * 16)  # ~characters per line at 8 pt
        text = textwrap.fill(_plain(caption), width)
        fig.text(0.01, 0.0, text, ha="left", va="top", fontsize=8, wrap=False, gid="caption")
    paths = []
    for ext in ("png", "pdf"):
        path = Path(out_dir) / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight")
        paths.append(path)
    return paths


def _plain(markdown: str) -> str:
    """Markdown emphasis and code marks removed: matplotlib draws text, not Markdown."""
    return re.sub(r"[*`]", "", markdown)


def show(fig: Figure, out_dir: str | Path, name: str, caption: str) -> None:
    """In a notebook: save ``fig`` with its caption drawn under it and show that same image, so the
    page and the PNG carry one caption (not a Markdown copy that could drift from the file's)."""
    from IPython.display import display

    save(fig, out_dir, name, caption)
    display(fig)
    plt.close(fig)


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


def plot_train_val(curves: pd.DataFrame, t3: pd.DataFrame, corpus: str) -> Figure:
    """F3: training-log train/val loss vs epoch per model (left); the val/train ratio of T3 (right).

    The ratio panel draws T3's numbers (``ternarylm evaluate``: both losses in eval mode on the
    final weights), so the figure and the table give one number for one ratio; the curves are the
    training log (train loss with dropout, averaged since the previous log point).
    """
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    n_seeds = int(curves.groupby("variant")["seed"].nunique().min())
    for v, g in curves.groupby("variant", sort=False):
        epoch = g.groupby("step")["epoch"].first()
        c = COLORS.get(v, "grey")
        for col, ls, what in (("train_loss", LINESTYLES.get(v, "-"), "train"), ("val_loss", ":", "val")):
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
    ax.set(xlabel="epoch", ylabel=f"training-log {LOSS_LABEL}")
    ax.set_title(f"Training-log losses on {CORPUS_LABELS.get(corpus, corpus)} ({_seeds_note(n_seeds)})")
    # below the axes: the curves fill the panel, a legend inside would cover them
    ax.legend(ncols=3, handlelength=3, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    plot_ratio_bars(ax2, t3)
    fig.tight_layout()
    return fig


RATIO_KINDS = (("loss_ratio_smoothed", "label-smoothed", None), ("loss_ratio", "plain CE", "//"))


def plot_ratio_bars(ax: Axes, t3: pd.DataFrame) -> None:
    """T3's eval-mode val/train loss ratios per model (± std over seeds), the paper's as diamonds."""
    x = np.arange(len(t3))
    width = 0.38
    handles = []
    for i, (col, what, hatch) in enumerate(RATIO_KINDS):
        pos = x - width / 2 + i * width
        mean, std = t3[f"{col}_mean"].astype(float), t3[f"{col}_std"].astype(float).fillna(0)
        colors = [COLORS.get(v, "grey") for v in t3["variant"]]
        bars = ax.bar(pos, mean, width, yerr=std, color=colors, alpha=0.85 if hatch is None else 0.45)
        for bar, m in zip(bars, mean, strict=True):
            bar.set_hatch(hatch)
            bar.set_gid(col)  # tests find the bars of each ratio kind by this id
            # the value inside the bar's foot: the paper's mark may sit at its top
            # on a white box: the hatching of the plain-CE bars would run through the digits
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                0.03,
                f"{m:.2f}",
                ha="center",
                va="bottom",
                fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0, "alpha": 0.9},
            )
        handles.append(Patch(facecolor="lightgrey", hatch=hatch, label=f"ours, {what}"))
    paper = t3["paper_ratio"].astype(float)
    if paper.notna().any():
        ax.plot(x - width / 2, paper, ls="none", marker="D", color=COLORS["paper"], gid="paper")
        handles.append(Line2D([], [], ls="none", marker="D", color=COLORS["paper"], label="paper"))
    ax.axhline(1.0, color=COLORS["baseline"], lw=1, ls=":")
    ax.set_xticks(x, [LABELS.get(v, v).replace(", ", ",\n") for v in t3["variant"]], fontsize=8)
    ax.set(ylabel="val loss / train loss (eval mode, final weights)")
    ax.set_title("Generalization gap, as in T3 (1 = no gap)")
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.margins(y=0.12)


# --- F1: convergence ---------------------------------------------------------------------------------


def plot_convergence(
    steps: pd.DataFrame,
    epochs: pd.DataFrame,
    finals: pd.DataFrame,
    paper_epochs: int,
    not_run: Sequence[str],
    vocab: tuple[int, int],
) -> Figure:
    """F1: training loss vs epoch per corpus (logged values thin, epoch averages with markers).

    ``steps``: metrics rows (corpus, variant, seed, epoch, train_loss); ``epochs``: per-epoch
    averages; ``finals``: the final-loss table with ``paper_final_loss``; ``vocab``: (ours from
    tokenizer.json, the paper's) — a loss in nats/token depends on it, so the title says both.
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
    _star_labels(ax, paper["paper_final_loss"].astype(float).tolist(), paper_epochs)
    ax.set(xlabel="epoch", ylabel=f"training {LOSS_LABEL}")
    ax.set_xlim(0, paper_epochs + 1.5)
    ax.set_title(
        f"Training convergence per corpus ({_seeds_note(n_seeds)}; thin: logged values)\n"
        f"loss levels depend on the vocabulary: ours {vocab[0]:,} tokens, the paper's {vocab[1]:,}",
        fontsize=10,
    )
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


def _star_labels(ax: Axes, values: Sequence[float], x: float) -> None:
    """The paper's final losses written right of their stars, moved apart vertically where two are
    close (4.61 / 4.70): each label at least 6 % of the axis height above the one below it."""
    lo, hi = ax.get_ylim()
    gap, last = 0.06 * (hi - lo), -math.inf
    for v in sorted(values):
        y = max(v, last + gap)
        ax.annotate(f"{v:.2f}", (x, v), xytext=(x + 0.45, y), textcoords="data", va="center", fontsize=8)
        last = y
    ax.set_ylim(lo, max(hi, last + gap / 2))


# --- F2: sparsity ---------------------------------------------------------------------------------------


def plot_sparsity(layers: pd.DataFrame, init_pct: float) -> Figure:
    """F2: zero ternary codes per layer, both twins (fp32 = what absmean would give), paper overlaid.

    ``layers``: :func:`ternarylm.report.tables.sparsity_layers` (it decides which paper values pair
    with which layer); ``init_pct``: zero % that absmean gives Gaussian weights, drawn as a line.
    With ``change_pp_mean`` in ``layers`` a second panel shows the change since initialisation.
    """
    change = "change_pp_mean" in layers.columns and layers["change_pp_mean"].notna().any()
    fig, axes = plt.subplots(
        1,
        2 if change else 1,
        figsize=(15 if change else 10, 4.8),
        squeeze=False,
        gridspec_kw={"width_ratios": [3, 2] if change else [1]},
    )
    ax = axes[0, 0]
    names = list(dict.fromkeys(layers.sort_values("layer_index")["layer"]))
    x = np.arange(len(names))
    handles = _sparsity_bars(ax, layers, names, x, "zero_pct")
    ref = ax.axhline(init_pct, color=COLORS["baseline"], ls="--", lw=1.2, gid="init_expectation")
    ref.set_label(f"Gaussian weights under absmean: {init_pct:.1f} % (init expectation)")
    handles.insert(0, ref)
    note = _paper_overlay(ax, layers, names, x, handles)
    ax.set_xticks(x, names)
    ax.set(xlabel="layer (Emb = token embedding)", ylabel="zero ternary codes (% of weights)")
    ax.set_ylim(0, max(70, float(np.nanmax(layers["zero_pct_mean"])) + 8))
    ax.set_title(f"Layer-wise sparsity: zero ternary weights ({_seeds_note(int(layers['n'].min()))}){note}")
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, fontsize=8, frameon=False
    )
    if change:
        ax2 = axes[0, 1]
        _sparsity_bars(ax2, layers, names, x, "change_pp")
        ax2.axhline(0, color=COLORS["baseline"], lw=1)
        ax2.set_xticks(x, names)
        ax2.set(xlabel="layer", ylabel="zero codes now − at init (percentage points)")
        ax2.set_title("Change since initialisation (same seed's init weights)")
        lim = max(2.0, float(np.nanmax(np.abs(layers["change_pp_mean"]))) * 1.3)
        ax2.set_ylim(-lim, lim)
    fig.tight_layout()
    return fig


def _sparsity_bars(ax, layers: pd.DataFrame, names: list[str], x: np.ndarray, col: str) -> list:
    """Grouped bars of ``{col}_mean`` ± std per layer, one colour per twin; legend handles."""

    variants = sorted(dict.fromkeys(layers["variant"]), key=lambda v: (v != "ternary", v))
    width = 0.8 / max(len(variants), 1)
    handles = []
    for i, v in enumerate(variants):
        g = layers[layers["variant"] == v].set_index("layer").reindex(names)
        pos = x - 0.4 + width * (i + 0.5)
        color, alpha = COLORS.get(v, "grey"), 0.9 if v == "ternary" else 0.5
        bars = ax.bar(
            pos, g[f"{col}_mean"], width, yerr=g[f"{col}_std"].fillna(0), color=color, alpha=alpha, capsize=2
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
    return handles


def _paper_overlay(ax, layers: pd.DataFrame, names: list[str], x: np.ndarray, handles: list) -> str:
    """The paper's values: on the layer of the same name (same depth), else hollow at the same
    relative depth; returns a title note saying which."""
    tern = layers[layers["variant"] == "ternary"].set_index("layer").reindex(names)
    same = tern["paper_zero_pct"]
    if same.notna().any():
        (line,) = ax.plot(
            x, same, color=COLORS["paper"], marker="D", ms=5, lw=1, label="paper (ternary), same layer"
        )
        handles.insert(0, line)
    if "paper_zero_pct_at_depth" not in tern or not tern["paper_zero_pct_at_depth"].notna().any():
        return ""
    depth = tern["paper_zero_pct_at_depth"]
    (line,) = ax.plot(
        x,
        depth,
        color=COLORS["paper"],
        marker="D",
        mfc="white",
        ms=6,
        ls=":",
        lw=1,
        label="paper, its layer at the same relative depth ("
        + ", ".join(tern["paper_layer_at_depth"].dropna())
        + ")",
    )
    handles.insert(0, line)
    n_layers = sum(1 for n in names if n.startswith("L"))
    return f"\nour {n_layers} layers vs the paper's 12: paper values by relative depth, not by layer"


def plot_sparsity_modules(modules: pd.DataFrame, init_pct: float) -> Figure:
    """Heatmaps of zero % per layer x module, one panel per twin, on a fixed 0-100 % scale (a
    data-range scale would make 30 vs 32 % look like black vs white); the colour bar marks the
    Gaussian-init expectation ``init_pct``."""
    variants = list(dict.fromkeys(modules["variant"]))
    fig, axes = plt.subplots(
        1, len(variants), figsize=(4.8 * len(variants), 0.35 * modules["layer"].nunique() + 2)
    )
    axes = np.atleast_1d(axes)
    vmin, vmax = 0.0, 100.0
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
            color = "white" if val < 0.5 * (vmin + vmax) else "black"
            ax.text(c, r, f"{val:.0f}", ha="center", va="center", fontsize=7, color=color)
        title = LABELS.get(v, v) + (" (control)" if v == "fp32" else "")
        ax.set(xlabel="projection", title=f"{title}: zero codes (%)")
    axes[0].set_ylabel("layer")
    bar = fig.colorbar(im, ax=list(axes), label="zero ternary codes (% of weights)", shrink=0.85)
    bar.ax.axhline(init_pct, color="white", lw=2)
    ticks = [0, init_pct, 50, 75, 100]  # the init expectation as a labelled tick, clear of 25
    bar.set_ticks(ticks, labels=["0", f"{init_pct:.0f} (Gaussian init)", "50", "75", "100"])
    return fig


# --- fine-tuning curves -------------------------------------------------------------------------------------


def plot_finetune_curves(
    curves: pd.DataFrame, metric: dict[str, str], baseline: dict[str, float], paper: dict[str, float]
) -> Figure:
    """Per task: losses vs epoch (left) and the dev primary metric vs epoch (right) for the twins and
    the scratch control (grey, dashed), with the majority-class baseline and the paper's value."""
    tasks = list(dict.fromkeys(curves["task"]))
    fig, axes = plt.subplots(len(tasks), 2, figsize=(14, 3.6 * len(tasks)), squeeze=False)
    for i, t in enumerate(tasks):
        g = curves[curves["task"] == t]
        n_seeds = int(g.groupby("variant")["seed"].nunique().min())
        ax, ax2 = axes[i]
        for v, gv in g.groupby("variant", sort=False):
            c, style = COLORS.get(v, "grey"), LINESTYLES.get(v)  # grey: the control; ls: the loss
            for col, ls in (("train_loss", "-"), ("heldout_loss", "--"), ("dev_loss", ":")):
                if col in gv.columns and gv[col].notna().any():
                    b = seed_band(gv, "epoch", col)
                    what = f"{LABELS.get(v, v)} {col.replace('_loss', '')}"
                    band(ax, b["epoch"], b["mean"], b["std"], color=c, ls=ls, marker="o", label=what)
            col = f"dev_{metric[t]}"
            if col in gv.columns and gv[col].notna().any():
                b = seed_band(gv, "epoch", col)
                band(
                    ax2,
                    b["epoch"],
                    b["mean"],
                    b["std"],
                    color=c,
                    ls=style or "-",
                    marker="o",
                    label=LABELS.get(v, v),
                )
        if t in baseline and not math.isnan(baseline[t]):
            ax2.axhline(
                baseline[t],
                color=COLORS["baseline"],
                ls=":",
                lw=1.5,
                label=f"majority class {baseline[t]:.2f}",
            )
        if t in paper:
            ax2.axhline(paper[t], color=COLORS["paper"], lw=1.2, gid="paper", label=f"paper {paper[t]:.2f}")
        name = TASK_NAMES.get(t, t)
        ax.set(
            xlabel="epoch",
            ylabel="cross-entropy (nats)",
            title=f"{name}: fine-tuning losses ({_seeds_note(n_seeds)})",
        )
        mname = METRIC_NAMES.get(metric[t], metric[t]) + (" x 100" if metric[t] == "mcc" else "")
        ax2.set(xlabel="epoch", ylabel=f"dev {mname} (%)", title=f"{name}: dev {mname} per epoch")
        # outside the panels: 9 lines and their bands leave no free corner inside
        ax.legend(fontsize=7, handlelength=3.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        ax2.legend(
            fontsize=7, handlelength=3.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0
        )
        for a in (ax, ax2):
            a.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=list(COLORS.values()))
