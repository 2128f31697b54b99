"""Mechanisms at our scale: the paper's claims about *how* ternary training behaves, tested here.

The claims table (claims.py) compares our numbers with the paper's 132M-model numbers and says
"not comparable" when the setup differs. Two of the paper's claims are about mechanisms that a
small run can test on its own terms: implicit regularization ("discrete weights can prevent
overfitting on smaller datasets") and sparsity emerging in training ("middle layers achieve
60-62 % sparsity, significantly higher than the boundary layers"). Each row here states the
mechanism at the scale of the run, never a verdict on the paper's numbers:

(a) the ternary twin's val/train ratio is below the FP32 twin's by more than seed noise, in a
    regime where FP32 overfits (every seed's FP32 ratio >= OVERFIT_RATIO; else "not tested");
(b) the fp32-noncausal control (the authors' baseline has no causal mask) inflates the ratio
    above the causal FP32 twin's by more than seed noise — a cause of the paper's 3.51x that
    has nothing to do with FP32 weights;
(c1) the ternary twin's zero fraction rises above its initial level (31.01 % for Gaussian
    weights) during training by more than seed noise;
(c2) at the end of training its middle layers have more zeros than its boundary layers.

Discipline (as the verdicts): every comparison is paired by seed (the twins of one seed start
from the same initial weights), needs at least MIN_STD_SEEDS seeds, every seed to point the same
way, and a mean above SEED_K standard deviations of the per-seed differences *and* an absolute
minimum (so a noise-free but negligible difference does not count). The ratio is the label-
smoothed one (the paper's objective, as claims.py), with the plain-CE ratio shown beside it.

``ternarylm mechanisms --config RESULTS/config.resolved.json`` (rule ``mechanisms``) writes
``mechanisms.csv``, ``tables/mech_ratio_curves.csv`` and the figures (figures_mech.py).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ternarylm.io import write_csv
from ternarylm.report.artifacts import Artifacts
from ternarylm.report.formats import NONCAUSAL
from ternarylm.report.paper import GAUSS_ZERO_FRAC, MIN_STD_SEEDS, NOT_RUN, PAPER, RATIO_REL, SEED_K
from ternarylm.report.tables import Stat

HOLDS, FAILS = "holds", "does not hold"
NOT_TESTED = "not tested (FP32 does not overfit)"
NOT_COMPARABLE = "not comparable"
VERDICTS = (HOLDS, FAILS, NOT_TESTED, NOT_COMPARABLE, NOT_RUN)
# FP32 "overfits" when every seed's eval-mode val/train ratio is at least this (issue 26): a 30 %
# gap between held-out and seen text, far above the 1.05 both twins show at 2 epochs (realdata-mini)
OVERFIT_RATIO = 1.3
# smallest ratio difference that counts, however small the seed noise: 0.05 is 2 % of the paper's
# 2.46 gap and 10x the 0.004 of realdata-mini
MIN_RATIO_GAP = 0.05
# smallest zero-fraction difference that counts (percentage points): the paper's effect is 31 -> 60 %
MIN_PP = 1.0
log = logging.getLogger("ternarylm.mechanisms")
FIELDS = ["id", "mechanism", "scale", "measured", "rule", "verdict", "reason"]


@dataclass
class Evidence:
    """What the rows read. ``ratios``: variant, seed, ratio, ratio_plain (one row per evaluated run).
    ``zeros``: variant, seed, step, layer_index, frac_zero (the per-layer pooled trajectory rows)."""

    ratios: pd.DataFrame
    zeros: pd.DataFrame
    n_layers: int
    scale: str


def paired(df: pd.DataFrame, a: str, b: str, col: str) -> dict[int, float]:
    """Per seed present in both: ``col`` of variant ``a`` minus ``col`` of variant ``b``."""
    x = df[df["variant"] == a].set_index("seed")[col]
    y = df[df["variant"] == b].set_index("seed")[col]
    return {int(s): float(x[s] - y[s]) for s in sorted(set(x.index) & set(y.index))}


def margin_verdict(diffs: dict[int, float], minimum: float, digits: int = 3) -> tuple[str, str]:
    """(verdict, reason) of "the difference is positive beyond seed noise", per seed pair.

    Holds iff every seed's difference is > 0 and the mean exceeds both SEED_K x the std of the
    differences and ``minimum``. Fewer than MIN_STD_SEEDS seeds: not comparable (no noise estimate).
    """
    if len(diffs) < MIN_STD_SEEDS:
        n = len(diffs)
        return NOT_COMPARABLE, f"{NOT_COMPARABLE}: {n} seed(s); seed noise needs >= {MIN_STD_SEEDS}"
    st = Stat.of(diffs.values())
    need = max(SEED_K * st.std, minimum)
    per_seed = ", ".join(f"s{s} {d:+.{digits}f}" for s, d in diffs.items())
    detail = f"per seed {per_seed}; mean {st.mean:+.{digits}f} vs needed > {need:.{digits}f}"
    detail += f" (max of {SEED_K:g} x std {st.std:.{digits}f} and {minimum:g})"
    if all(d > 0 for d in diffs.values()) and st.mean > need:
        return HOLDS, detail
    return FAILS, detail


def _row(key: str, mechanism: str, ev: Evidence, measured: str, rule: str, verdict: str, reason: str):
    return dict(zip(FIELDS, (key, mechanism, ev.scale, measured, rule, verdict, reason), strict=True))


def _what(verdict: str, what: str, reason: str) -> str:
    """``what`` the per-seed numbers are, before them (a not-comparable reason has none)."""
    return what + reason if verdict in (HOLDS, FAILS) else reason


def _ratio_stat(ev: Evidence, variant: str, col: str = "ratio") -> Stat:
    return Stat.of(ev.ratios.loc[ev.ratios["variant"] == variant, col])


def regularization_row(ev: Evidence) -> dict[str, Any]:
    """(a): ternary ratio < FP32 ratio by more than seed noise, where FP32 overfits."""
    mech = "implicit regularization: the ternary twin overfits less than the FP32 twin"
    rule = (
        f"every seed's FP32 ratio >= {OVERFIT_RATIO} (else not tested); FP32 - ternary ratio > 0 per seed, "
        f"mean > max({SEED_K:g} x std, {MIN_RATIO_GAP})"
    )
    f, t = _ratio_stat(ev, "fp32"), _ratio_stat(ev, "ternary")
    measured = f"val/train ratio FP32 {f.fmt(3)}, ternary {t.fmt(3)} (plain CE: "
    measured += f"{_ratio_stat(ev, 'fp32', 'ratio_plain').fmt(3)}, {_ratio_stat(ev, 'ternary', 'ratio_plain').fmt(3)})"
    diffs = paired(ev.ratios, "fp32", "ternary", "ratio")
    if not diffs:
        return _row("a", mech, ev, measured, rule, NOT_RUN, f"{NOT_RUN}: no evaluated twin pair")
    fp = ev.ratios[ev.ratios["variant"] == "fp32"].set_index("seed")["ratio"]
    below = [f"s{s} {fp[s]:.3f}" for s in diffs if fp[s] < OVERFIT_RATIO]
    if len(diffs) >= MIN_STD_SEEDS and below:
        reason = f"FP32 ratio below {OVERFIT_RATIO} on {', '.join(below)}: no overfitting to prevent"
        return _row("a", mech, ev, measured, rule, NOT_TESTED, reason)
    verdict, reason = margin_verdict(diffs, MIN_RATIO_GAP)
    return _row("a", mech, ev, measured, rule, verdict, _what(verdict, "FP32 - ternary ratio ", reason))


def noncausal_row(ev: Evidence) -> dict[str, Any]:
    """(b): the unmasked FP32 control's ratio above the causal FP32 twin's by more than seed noise."""
    paper = PAPER["loss_ratio"].value
    mech = (
        "without the causal mask (the authors' FP32 baseline) the val/train ratio is inflated above the "
        f"causal FP32 twin's: the pattern of the paper's {paper['fp32']}x vs {paper['ternary']}x"
    )
    rule = f"control - causal FP32 ratio > 0 per seed, mean > max({SEED_K:g} x std, {MIN_RATIO_GAP})"
    nc, f = _ratio_stat(ev, NONCAUSAL), _ratio_stat(ev, "fp32")
    measured = f"val/train ratio {NONCAUSAL} {nc.fmt(3)}, causal FP32 {f.fmt(3)}"
    if nc.n == 0:
        return _row("b", mech, ev, measured, rule, NOT_RUN, f"{NOT_RUN}: no {NONCAUSAL} control evaluated")
    verdict, reason = margin_verdict(paired(ev.ratios, NONCAUSAL, "fp32", "ratio"), MIN_RATIO_GAP)
    near = abs(nc.mean / paper["fp32"] - 1) <= RATIO_REL
    reason += f"; control's ratio {'within' if near else 'not within'} {RATIO_REL:.0%} of {paper['fp32']}x"
    return _row("b", mech, ev, measured, rule, verdict, reason)


def _zeros_at(ev: Evidence, variant: str, which: str) -> pd.DataFrame:
    """Per (seed, layer_index): frac_zero at the first (``init``) or last (``final``) recorded step."""
    z = ev.zeros[ev.zeros["variant"] == variant]
    if z.empty:
        return z
    steps = z.groupby("seed")["step"].transform("min" if which == "init" else "max")
    return z[z["step"] == steps]


def zeros_rise_row(ev: Evidence) -> dict[str, Any]:
    """(c1): the ternary twin's mean zero fraction over layers rises above its step-0 level."""
    mech = "sparsity emerges: the ternary twin's zero fraction rises above its initial level in training"
    rule = (
        f"final - step-0 zeros (mean over layers, pp) > 0 per seed, mean > max({SEED_K:g} x std, {MIN_PP} pp)"
    )
    init, final = _zeros_at(ev, "ternary", "init"), _zeros_at(ev, "ternary", "final")
    if init.empty or (init["step"] != 0).any():
        return _row("c1", mech, ev, "", rule, NOT_RUN, f"{NOT_RUN}: no ternary trajectory from step 0")
    i0 = init.groupby("seed")["frac_zero"].mean() * 100
    i1 = final.groupby("seed")["frac_zero"].mean() * 100
    measured = f"zeros {Stat.of(i0).fmt(2, ' %')} at step 0 (Gaussian {100 * GAUSS_ZERO_FRAC:.2f} %)"
    measured += f" -> {Stat.of(i1).fmt(2, ' %')} at the end; FP32 weights (control) {_fp32_change(ev)}"
    verdict, reason = margin_verdict({int(s): float(i1[s] - i0[s]) for s in i0.index}, MIN_PP, 2)
    return _row("c1", mech, ev, measured, rule, verdict, _what(verdict, "change in pp: ", reason))


def _fp32_change(ev: Evidence) -> str:
    init, final = _zeros_at(ev, "fp32", "init"), _zeros_at(ev, "fp32", "final")
    if init.empty:
        return "not recorded"
    d = final.groupby("seed")["frac_zero"].mean() - init.groupby("seed")["frac_zero"].mean()
    return f"{Stat.of(d * 100).fmt(2, ' pp')}"


def middle_row(ev: Evidence) -> dict[str, Any]:
    """(c2): at the end, middle layers' zeros exceed boundary layers' (first and last), per seed."""
    mech = "middle layers are sparser than boundary layers (first and last) at the end of training"
    rule = f"middle - boundary zeros (pp) > 0 per seed, mean > max({SEED_K:g} x std, {MIN_PP} pp)"
    final = _zeros_at(ev, "ternary", "final")
    if final.empty:
        return _row("c2", mech, ev, "", rule, NOT_RUN, f"{NOT_RUN}: no ternary trajectory")
    if ev.n_layers < 3:
        reason = f"{NOT_COMPARABLE}: {ev.n_layers} layers have no middle"
        return _row("c2", mech, ev, "", rule, NOT_COMPARABLE, reason)
    edge = final["layer_index"].isin([1, ev.n_layers])
    mid = final[~edge].groupby("seed")["frac_zero"].mean() * 100
    bnd = final[edge].groupby("seed")["frac_zero"].mean() * 100
    measured = f"final zeros: middle L2-L{ev.n_layers - 1} {Stat.of(mid).fmt(2, ' %')}, "
    measured += f"boundary L1/L{ev.n_layers} {Stat.of(bnd).fmt(2, ' %')}"
    verdict, reason = margin_verdict({int(s): float(mid[s] - bnd[s]) for s in mid.index}, MIN_PP, 2)
    return _row("c2", mech, ev, measured, rule, verdict, _what(verdict, "middle - boundary in pp: ", reason))


def mechanism_rows(ev: Evidence) -> list[dict[str, Any]]:
    return [regularization_row(ev), noncausal_row(ev), zeros_rise_row(ev), middle_row(ev)]


# --- reading a run ---------------------------------------------------------------------------------
def _runs(art: Artifacts) -> list[tuple[str, str, int]]:
    return art.main_runs() + art.noncausal_runs()


def load_ratios(art: Artifacts) -> pd.DataFrame:
    """variant, seed, ratio (label-smoothed), ratio_plain of every evaluated run (missing: skipped)."""
    rows = []
    for corpus, v, s in _runs(art):
        if Path(art.eval_json(corpus, v, s)).exists():
            d = art.read_json(art.eval_json(corpus, v, s))
            rows.append(
                {"variant": v, "seed": s, "ratio": d["loss_ratio_smoothed"], "ratio_plain": d["loss_ratio"]}
            )
    return pd.DataFrame(rows, columns=["variant", "seed", "ratio", "ratio_plain"])


def load_trajectories(art: Artifacts, module: str = "all") -> pd.DataFrame:
    """The trajectory rows of ``module`` (default: the per-layer pools) of every run that has one."""
    frames = []
    for corpus, v, s in _runs(art):
        path = art.trajectory_csv(corpus, v, s)
        if Path(path).exists():
            df = art.read_csv(path, ("step", "layer_index", "module", "frac_zero"))
            frames.append(df[df["module"] == module].assign(variant=v, seed=s))
    return (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["variant", "seed", "step"])
    )


def ratio_curves(art: Artifacts) -> pd.DataFrame:
    """Per run and eval row: epoch and the eval-mode val/train ratio, plain and label-smoothed.

    Only rows that measured the train split in eval mode (``train_eval_*`` of metrics.csv).
    """
    frames = []
    for corpus, v, s in _runs(art):
        path = art.metrics_csv(corpus, v, s)
        if not Path(path).exists():
            continue
        m = pd.read_csv(path)
        if "train_eval_ce" not in m.columns:
            continue
        m = m.dropna(subset=["train_eval_ce"])
        frames.append(
            pd.DataFrame(
                {
                    "variant": v,
                    "seed": s,
                    "step": m["step"],
                    "epoch": m["epoch"],
                    "train_ce": m["train_eval_ce"],
                    "val_ce": m["val_ce"],
                    "train_loss": m["train_eval_loss"],
                    "val_loss": m["val_loss"],
                    "ratio_plain": m["val_ce"] / m["train_eval_ce"],
                    "ratio": m["val_loss"] / m["train_eval_loss"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def scale_of(art: Artifacts) -> str:
    """The stated scale of every row: corpus size, model, epochs, seeds."""
    m, cfg = art.cfg["model"], art.cfg
    try:
        tokens = f"{art.token_counts(art.main)['train']:,} train tokens"
    except (FileNotFoundError, ValueError):
        tokens = "train tokens unknown"
    docs = ((cfg.get("corpora") or {}).get(art.main) or {}).get("max_train_docs")
    corpus = f"{art.main} ({f'{docs} docs, ' if docs else ''}{tokens})"
    return (
        f"{corpus}; d_model {m['d_model']} x {m['n_layers']} layers; "
        f"{art.epochs(art.main)} epochs; {len(art.seeds)} seed(s)"
    )


def load_evidence(art: Artifacts) -> Evidence:
    return Evidence(
        load_ratios(art), load_trajectories(art), int(art.cfg["model"]["n_layers"]), scale_of(art)
    )


def write_rows(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    write_csv(path, rows, FIELDS)
    return Path(path)


def write_all(art: Artifacts) -> list[dict[str, Any]]:
    """mechanisms.csv, tables/mech_ratio_curves.csv and the figures of ``art``'s run; returns the rows."""
    from ternarylm.report import figures_mech  # matplotlib only when drawing

    rows = mechanism_rows(load_evidence(art))
    write_rows(rows, art.mechanisms_csv())
    curves = ratio_curves(art)
    write_csv(art.table("mech_ratio_curves"), curves.to_dict("records"), list(curves.columns))
    figures_mech.draw_all(art, curves, load_trajectories(art))
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", type=Path, help="results folder (default: the config's results_dir)")


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    art = Artifacts(args.results or config["results_dir"], config)
    for r in write_all(art):
        log.info("(%s) %s: %s | %s", r["id"], r["verdict"], r["measured"], r["reason"])
