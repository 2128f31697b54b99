"""Figures of the mechanism rows (mechanisms.py): the sparsity trajectory beside F2, and per-epoch
val/train ratio curves beside F3. Styles (twin colours, control line styles) are figures.py's.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from ternarylm.layout import RATIO_FIGURE, TRAJECTORY_FIGURE
from ternarylm.report.artifacts import Artifacts
from ternarylm.report.figures import COLORS, LABELS, LINESTYLES, apply_style, band, save, seed_band
from ternarylm.report.paper import GAUSS_ZERO_FRAC


def plot_trajectory(traj: pd.DataFrame) -> Figure:
    """Zero fraction (%) vs training step, one colour per layer, mean ± std over seeds as bands;
    the ternary twin left, the FP32 twin's weights (absmean rounding as a what-if) right; the
    31.01 % that Gaussian weights give as a dotted line. ``traj``: load_trajectories' rows."""
    variants = [v for v in ("ternary", "fp32") if v in set(traj["variant"])]
    fig, axes = plt.subplots(
        1, max(len(variants), 1), figsize=(6 * max(len(variants), 1), 4.2), squeeze=False
    )
    layers = sorted(traj["layer_index"].dropna().unique()) if not traj.empty else []
    cmap = plt.get_cmap("viridis", max(len(layers), 1))
    for ax, v in zip(axes[0], variants, strict=False):
        sub = traj[traj["variant"] == v]
        n_seeds = sub["seed"].nunique()
        for k, layer in enumerate(layers):
            b = seed_band(
                sub[sub["layer_index"] == layer].assign(pct=lambda d: 100 * d["frac_zero"]), "step", "pct"
            )
            band(ax, b["step"], b["mean"], b["std"], color=cmap(k), label=f"L{int(layer)}", marker=".")
        ax.axhline(100 * GAUSS_ZERO_FRAC, color=COLORS["paper"], ls=":", lw=1, label="Gaussian init 31.01 %")
        what = "ternary codes" if v == "ternary" else "absmean rounding of FP32 weights (control)"
        ax.set_title(f"{LABELS.get(v, v)}: {what}\nmean ± std over {n_seeds} seed(s)")
        ax.set(xlabel="training step", ylabel="zero weights (%)")
        ax.legend(fontsize=8, ncol=2)
    fig.suptitle("F2 trajectory: zero fraction per layer during pretraining", y=1.06)
    return fig


def plot_ratio_curves(curves: pd.DataFrame, overfit_ratio: float) -> Figure:
    """Per-epoch eval-mode val/train loss ratio of every run (one line per seed, colour per model):
    label-smoothed left, plain CE right; the overfitting threshold of the mechanism rows dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharex=True)
    for ax, (col, what) in zip(
        axes, (("ratio", "label-smoothed CE"), ("ratio_plain", "plain CE")), strict=True
    ):
        for (v, s), g in curves.groupby(["variant", "seed"], sort=False):
            first = s == curves.loc[curves["variant"] == v, "seed"].min()
            ax.plot(
                g["epoch"],
                g[col],
                color=COLORS.get(v, "grey"),
                ls=LINESTYLES.get(v, "-"),
                lw=1.3,
                alpha=0.85,
                label=LABELS.get(v, v) if first else None,
            )
        ax.axhline(
            overfit_ratio, color=COLORS["baseline"], ls="--", lw=1, label=f"overfitting ({overfit_ratio})"
        )
        ax.axhline(1.0, color=COLORS["baseline"], ls=":", lw=1)
        ax.set(xlabel="epoch", ylabel=f"val / train loss ({what}, eval mode)")
        ax.set_title(f"val/train ratio per epoch, {what} (one line per seed)")
        ax.legend(fontsize=8)
    return fig


def draw_all(art: Artifacts, curves: pd.DataFrame, traj: pd.DataFrame) -> list[str]:
    """Draw what the run has (a figure without data is skipped); returns the PNG paths written."""
    from ternarylm.report.mechanisms import OVERFIT_RATIO

    apply_style()
    out = []
    for name, ok, make in (
        (TRAJECTORY_FIGURE, not traj.empty, lambda: plot_trajectory(traj)),
        (RATIO_FIGURE, not curves.empty, lambda: plot_ratio_curves(curves, OVERFIT_RATIO)),
    ):
        if ok:
            fig = make()
            out.append(str(save(fig, art.figures_dir(), name)[0]))
            plt.close(fig)
    return out
