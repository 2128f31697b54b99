"""F2 (layer-wise sparsity): zero fractions per layer and per module, beside the paper's and the
Gaussian initialisation's."""

from __future__ import annotations

import math

import pandas as pd

from ternarylm.report.artifacts import Artifacts
from ternarylm.report.paper import GAUSS_ZERO_FRAC, PAPER
from ternarylm.report.tablekit import aggregate


def sparsity_long(art: Artifacts) -> pd.DataFrame:
    return pd.concat([art.sparsity(v, s) for v in art.variants for s in art.seeds], ignore_index=True)


def gaussian_zero_pct() -> float:
    """Zero codes (%) that absmean ternarization gives Gaussian weights (what init gives): ≈ 31.0
    (derived at ``paper.GAUSS_ZERO_FRAC``)."""
    return 100 * GAUSS_ZERO_FRAC


def paper_layer_at_depth(index: int, n_layers: int, paper_n_layers: int) -> int:
    """The paper's layer (1-based) whose centre sits at the same relative depth as our layer ``index``
    (a tie between two of its layers goes to the deeper one)."""
    return min(paper_n_layers, max(1, math.floor((index - 0.5) / n_layers * paper_n_layers + 1)))


def sparsity_layers(sp: pd.DataFrame) -> pd.DataFrame:
    """F2 table: zero % per layer (embedding + pooled blocks) per variant, mean ± std, paper %.

    ``paper_zero_pct`` pairs our layer with the paper's of the same name only when the model has the
    paper's depth (else only Emb); then ``paper_layer_at_depth`` / ``paper_zero_pct_at_depth`` give
    the paper's layer at the same relative depth instead (a comparison of depth, not of layers).
    With ``frac_zero_init`` in the CSVs: ``init_zero_pct`` and ``change_pp`` (percentage points
    since initialisation, per seed then averaged).
    """
    d = sp[(sp["module"] == "all") | (sp["layer"] == "Emb")].copy()
    d["zero_pct"] = 100 * d["frac_zero"]
    cols = ["zero_pct"]
    if "frac_zero_init" in d and d["frac_zero_init"].notna().any():
        d["init_zero_pct"] = 100 * pd.to_numeric(d["frac_zero_init"], errors="coerce")
        d["change_pp"] = d["zero_pct"] - d["init_zero_pct"]
        cols += ["init_zero_pct", "change_pp"]
    agg = aggregate(d, ["variant", "layer", "layer_index", "quantized"], cols)
    paper, paper_n = PAPER["sparsity_pct"].value, PAPER["setup"].value["n_layers"]
    n_layers = int(sp.loc[sp["layer"].astype(str).str.startswith("L"), "layer"].nunique())
    tern = agg["variant"] == "ternary"  # the paper's values are of its ternary model
    same_depth = n_layers == paper_n
    named = agg["layer"].map(lambda name: paper.get(name) if same_depth or name == "Emb" else None)
    agg["paper_zero_pct"] = pd.to_numeric(named, errors="coerce").where(tern)
    if not same_depth:
        block = agg["layer"] != "Emb"
        at = agg["layer_index"].map(lambda i: paper_layer_at_depth(int(i), n_layers, paper_n))
        agg["paper_layer_at_depth"] = ("L" + at.astype(str)).where(block & tern)
        agg["paper_zero_pct_at_depth"] = agg["paper_layer_at_depth"].map(paper).where(block & tern)
    order = agg["variant"].map(lambda v: (v != "ternary", v))
    return agg.assign(_o=order).sort_values(["_o", "layer_index"]).drop(columns="_o").reset_index(drop=True)


def sparsity_modules(sp: pd.DataFrame) -> pd.DataFrame:
    d = sp[(sp["module"] != "all") & (sp["layer"] != "Emb")].copy()
    for k in ("frac_zero", "frac_pos", "frac_neg"):
        d[k.replace("frac_", "") + "_pct"] = 100 * d[k]
    return aggregate(
        d, ["variant", "layer", "layer_index", "module"], ["zero_pct", "pos_pct", "neg_pct", "alpha"]
    )
