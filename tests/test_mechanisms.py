"""Mechanism rows (ternarylm/report/mechanisms.py) flip on constructed evidence; the run readers and
figures work on a small constructed results folder."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from ternarylm.report import mechanisms as M
from ternarylm.report.artifacts import Artifacts
from ternarylm.report.formats import NONCAUSAL, TRAJECTORY_FIELDS

GAUSS = 0.3101


def _ratios(**by_variant):
    rows = [
        {"variant": v.replace("_", "-"), "seed": s, "ratio": r, "ratio_plain": r * 1.2}
        for v, rs in by_variant.items()
        for s, r in enumerate(rs)
    ]
    return pd.DataFrame(rows, columns=["variant", "seed", "ratio", "ratio_plain"])


def _zeros(final_by_seed, init=GAUSS, variant="ternary"):
    """final_by_seed: per seed, the final zero fraction of each layer (L1..Ln); step 0 at ``init``."""
    rows = []
    for s, finals in enumerate(final_by_seed):
        for i, f in enumerate(finals, start=1):
            rows.append({"variant": variant, "seed": s, "step": 0, "layer_index": i, "frac_zero": init})
            rows.append({"variant": variant, "seed": s, "step": 300, "layer_index": i, "frac_zero": f})
    return pd.DataFrame(rows)


def _ev(ratios=None, zeros=None, n_layers=4):
    ratios = _ratios(fp32=[1.8, 1.9, 1.75], ternary=[1.05, 1.06, 1.04]) if ratios is None else ratios
    zeros = _zeros([[0.32, 0.36, 0.37, 0.33]] * 3) if zeros is None else zeros
    return M.Evidence(ratios, zeros, n_layers, "constructed")


@pytest.mark.parametrize(
    ("fp32", "ternary", "verdict"),
    [
        ([1.8, 1.9, 1.75], [1.05, 1.06, 1.04], M.HOLDS),  # FP32 overfits, ternary does not
        ([1.8, 1.9, 1.75], [1.81, 1.88, 1.76], M.FAILS),  # both overfit equally
        ([1.05, 1.06, 1.04], [1.0, 1.01, 1.0], M.NOT_TESTED),  # FP32 does not overfit
        ([1.8, 1.9, 1.29], [1.0, 1.0, 1.0], M.NOT_TESTED),  # one seed's FP32 does not: regime is per seed
        ([1.8], [1.05], M.NOT_COMPARABLE),  # one seed: no seed noise
        ([1.8, 3.5, 1.75], [1.7, 1.05, 1.70], M.FAILS),  # a big mean gap, but within 2 std of seed noise
        ([1.8, 1.9, 1.75], [1.6, 1.7, 1.8], M.FAILS),  # one seed points the other way
        ([1.8, 1.9, 1.75], [1.79, 1.89, 1.74], M.FAILS),  # noise-free but below the 0.05 minimum
    ],
)
def test_regularization_row_flips_on_evidence(fp32, ternary, verdict):
    row = M.regularization_row(_ev(_ratios(fp32=fp32, ternary=ternary)))
    assert row["verdict"] == verdict
    assert set(row) == set(M.FIELDS) and row["scale"] == "constructed"


def test_one_seed_is_not_comparable_for_every_row():
    ev = _ev(_ratios(fp32=[1.8], ternary=[1.0], fp32_noncausal=[3.5]), _zeros([[0.3, 0.4, 0.4, 0.3]]))
    verdicts = {r["id"]: r["verdict"] for r in M.mechanism_rows(ev)}
    assert verdicts == dict.fromkeys(("a", "b", "c1", "c2"), M.NOT_COMPARABLE)
    assert "1 seed(s)" in M.regularization_row(ev)["reason"]


def test_noncausal_row():
    ok = M.noncausal_row(_ev(_ratios(fp32=[1.4, 1.5, 1.45], fp32_noncausal=[3.4, 3.6, 3.5])))
    assert ok["verdict"] == M.HOLDS and "within 10% of 3.51x" in ok["reason"]
    low = M.noncausal_row(_ev(_ratios(fp32=[1.4, 1.5, 1.45], fp32_noncausal=[1.41, 1.49, 1.46])))
    assert low["verdict"] == M.FAILS and "not within" in low["reason"]
    assert M.noncausal_row(_ev(_ratios(fp32=[1.4, 1.5, 1.45])))["verdict"] == M.NOT_RUN


@pytest.mark.parametrize(
    ("finals", "rise", "middle"),
    [
        ([[0.33, 0.37, 0.38, 0.34], [0.34, 0.38, 0.37, 0.33], [0.33, 0.36, 0.37, 0.34]], M.HOLDS, M.HOLDS),
        ([[0.3102, 0.3104, 0.3103, 0.3101]] * 3, M.FAILS, M.FAILS),  # +0.02 pp: below the 1 pp minimum
        ([[0.38, 0.34, 0.33, 0.37]] * 3, M.HOLDS, M.FAILS),  # boundary layers sparser
        ([[0.30, 0.30, 0.31, 0.30]] * 3, M.FAILS, M.FAILS),  # zeros fall
        (
            [[0.33, 0.37, 0.38, 0.34], [0.30, 0.32, 0.32, 0.30], [0.40, 0.45, 0.45, 0.40]],
            M.FAILS,
            M.HOLDS,
        ),  # s1 no rise
    ],
)
def test_sparsity_rows_flip_on_trajectories(finals, rise, middle):
    ev = _ev(zeros=_zeros(finals))
    assert M.zeros_rise_row(ev)["verdict"] == rise
    assert M.middle_row(ev)["verdict"] == middle


def test_sparsity_rows_need_a_trajectory_and_a_middle():
    empty = pd.DataFrame(columns=["variant", "seed", "step", "layer_index", "frac_zero"])
    assert M.zeros_rise_row(_ev(zeros=empty))["verdict"] == M.NOT_RUN
    two = _ev(zeros=_zeros([[0.35, 0.36]] * 3), n_layers=2)
    assert M.middle_row(two)["verdict"] == M.NOT_COMPARABLE


def _write_run(art, variant, seed, ratio, finals):
    """An evaluate JSON, a metrics.csv with eval-mode train losses and a trajectory.csv."""
    corpus = art.main
    path = art.eval_json(corpus, variant, seed)
    train = 2.0
    d = {"loss_ratio": ratio * 1.1, "loss_ratio_smoothed": ratio, "train_ce": train, "val_ce": train * ratio}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(d))
    Path(art.model_dir(corpus, variant, seed)).mkdir(parents=True, exist_ok=True)
    m = pd.DataFrame(
        {
            "step": [10, 20, 30],
            "epoch": [1, 2, 3],
            "val_ce": [4.0, 3.6, train * ratio],
            "val_loss": [4.4, 4.0, train * ratio + 0.4],
            "train_eval_ce": [3.9, 3.0, train],
            "train_eval_loss": [4.3, 3.4, train + 0.4],
        }
    )
    m.to_csv(art.metrics_csv(corpus, variant, seed), index=False)
    rows = [
        {"step": st, "epoch": st / 10, "layer": f"L{i}", "layer_index": i, "module": mod, "frac_zero": z}
        for st, frac in ((0, [GAUSS] * len(finals)), (30, finals))
        for i, z in enumerate(frac, start=1)
        for mod in ("q", "all")
    ]
    pd.DataFrame(rows, columns=TRAJECTORY_FIELDS).to_csv(
        art.trajectory_csv(corpus, variant, seed), index=False
    )


def test_run_is_read_and_drawn(tmp_path):
    cfg = {
        "main_corpus": "tinystories",
        "variants": ["ternary", "fp32"],
        "seeds": [0, 1, 2],
        "model": {"d_model": 64, "n_layers": 3},
        "train": {"epochs": 3},
        "controls": {"noncausal": True},
    }
    art = Artifacts(tmp_path, cfg)
    for s in range(3):
        _write_run(art, "ternary", s, 1.05 + 0.01 * s, [0.32, 0.36 + 0.01 * s, 0.33])
        _write_run(art, "fp32", s, 1.8 + 0.05 * s, [0.31, 0.31, 0.31])
        _write_run(art, NONCAUSAL, s, 3.4 + 0.05 * s, [0.31, 0.31, 0.31])
    ev = M.load_evidence(art)
    assert sorted(ev.ratios["variant"].unique()) == sorted(["ternary", "fp32", NONCAUSAL])
    assert set(ev.zeros["module"]) == {"all"}  # the per-layer pools only
    assert {r["id"]: r["verdict"] for r in M.mechanism_rows(ev)} == {
        "a": M.HOLDS,
        "b": M.HOLDS,
        "c1": M.HOLDS,
        "c2": M.HOLDS,
    }
    curves = M.ratio_curves(art)
    assert len(curves) == 9 * 3
    last = curves[(curves["variant"] == "fp32") & (curves["seed"] == 0)].iloc[-1]
    assert math.isclose(last["ratio_plain"], 1.8) and math.isclose(last["ratio"], (3.6 + 0.4) / 2.4)
    M.write_all(art)
    out = pd.read_csv(tmp_path / "mechanisms.csv")
    assert list(out.columns) == M.FIELDS and len(out) == 4
    assert (tmp_path / "figures" / "f2_sparsity_trajectory.png").stat().st_size > 10_000
    assert (tmp_path / "figures" / "f3_ratio_curves.png").exists()
    assert len(pd.read_csv(tmp_path / "tables" / "mech_ratio_curves.csv")) == 27
