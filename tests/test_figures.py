"""Tables and figures a reviewer can trust: controls beside the twins, one number for one ratio,
fixed colour scales, reference lines where they belong, no pairing of layers that do not match.

Figures are checked through their matplotlib objects (bar heights, line data, colour norms), on
fake artifacts (tests/fakes.py) or hand-made frames; the paper-size CPU benchmark plot runs on the
committed CSV.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from fakes import ROOT, fake_tokenizer, make_fake_results

from ternarylm.report import figures as fg
from ternarylm.report import paper
from ternarylm.report import tables as tb
from ternarylm.report.artifacts import Artifacts
from ternarylm.report.formats import NONCAUSAL, SCRATCH

SHALLOW = {"model": {"n_layers": 4}, "seeds": [0, 1], "bench": {"devices": ["cpu", "cuda"]}}


def _art(root: Path, overrides: dict) -> Artifacts:
    return Artifacts.from_config_file(make_fake_results(root, overrides), root)


@pytest.fixture(scope="module")
def shallow(tmp_path_factory) -> Artifacts:
    """Fake artifacts of a 4-layer model with both controls on (config.yaml's default) and a GPU."""
    return _art(tmp_path_factory.mktemp("shallow"), SHALLOW)


@pytest.fixture(scope="module")
def no_controls(tmp_path_factory) -> Artifacts:
    off = SHALLOW | {"controls": {"noncausal": False, "scratch": False}}
    return _art(tmp_path_factory.mktemp("off"), off)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _gid(ax, gid: str) -> list:
    return [p for p in ax.patches if p.get_gid() == gid]


# --- T3 / F3: the control beside the twins, one ratio -----------------------------------------------


def test_t3_has_the_noncausal_control_only_when_on(shallow, no_controls):
    t3 = tb.t3_loss_ratio(shallow).set_index("variant")
    assert list(t3.index) == ["ternary", "fp32", NONCAUSAL]
    assert t3.at[NONCAUSAL, "kind"].startswith("control")
    # the evaluate JSON's numbers: fakes write val_ce = train_ce * 3.5 for the control
    assert t3.at[NONCAUSAL, "loss_ratio_mean"] == pytest.approx(3.5)
    assert t3.at[NONCAUSAL, "train_ce_mean"] == pytest.approx(3.005)
    assert "±" in t3.at[NONCAUSAL, "val_loss_smoothed"]
    assert list(tb.t3_loss_ratio(no_controls)["variant"]) == ["ternary", "fp32"]
    assert set(tb.train_val_curves(shallow)["variant"]) == {"ternary", "fp32", NONCAUSAL}
    assert set(tb.train_val_curves(no_controls)["variant"]) == {"ternary", "fp32"}


def test_f3_ratio_panel_draws_t3s_numbers(shallow):
    t3 = tb.t3_loss_ratio(shallow)
    curves = tb.train_val_curves(shallow)
    # the training log's own ratio differs from the eval-mode one: the panel must not use it
    last = curves.sort_values("step").groupby("variant").last()
    assert not np.allclose(
        last["val_loss"] / last["train_loss"], t3.set_index("variant")["loss_ratio_smoothed_mean"]
    )
    fig = fg.plot_train_val(curves, t3, shallow.main)
    ratio_ax = fig.axes[1]
    for col in ("loss_ratio_smoothed", "loss_ratio"):
        heights = [b.get_height() for b in _gid(ratio_ax, col)]
        assert heights == pytest.approx(t3[f"{col}_mean"].tolist())
    (paper_line,) = [ln for ln in ratio_ax.lines if ln.get_gid() == "paper"]
    assert list(paper_line.get_ydata()[:2]) == [1.05, 3.51]
    assert "training-log" in fig.axes[0].get_ylabel()


# --- F1 / T1: the vocabulary -------------------------------------------------------------------------


def test_t1_and_f1_state_the_real_vocabulary(tmp_path):
    art = _art(tmp_path, {**SHALLOW, "convergence_corpora": ["tinystories"]})
    fake_tokenizer(art.tokenizer_json(), 257)  # a corpus that filled fewer entries than requested
    art.cfg["tokenizer"].update(vocab_size=512, pretrained=None)  # the request, not the model's vocab (300)
    t1 = tb.t1_model_config(art).set_index("setting")
    assert t1.at["vocab (requested vocab_size)", "Ternary"] == "512"
    assert t1.at["vocab (tokenizer.json entries)", "Ternary"] == "257"
    assert t1.at["vocab (tokenizer.json entries)", "paper"] == "30522"
    epochs, finals = tb.convergence(art)
    vocab = (art.tokenizer_vocab(), paper.PAPER["setup"].value["vocab_size"])
    fig = fg.plot_convergence(tb.convergence_steps(art), epochs, finals, 15, tb.not_run_corpora(art), vocab)
    title = fig.axes[0].get_title()
    assert "ours 257 tokens" in title and "30,522" in title


# --- F2: sparsity -------------------------------------------------------------------------------------


def test_gaussian_zero_pct_matches_absmean_on_gaussian_weights():
    w = np.random.default_rng(0).normal(0.0, 0.02, 2_000_000)
    codes = np.clip(np.round(w / np.abs(w).mean()), -1, 1)
    assert tb.gaussian_zero_pct() == pytest.approx(100 * np.mean(codes == 0), abs=0.1)
    assert tb.gaussian_zero_pct() == pytest.approx(31.0, abs=0.05)


def test_paper_layer_at_depth():
    assert [tb.paper_layer_at_depth(i, 4, 12) for i in (1, 2, 3, 4)] == [2, 5, 8, 11]
    assert [tb.paper_layer_at_depth(i, 12, 12) for i in range(1, 13)] == list(range(1, 13))
    assert [tb.paper_layer_at_depth(i, 2, 12) for i in (1, 2)] == [4, 10]  # centres 0.25, 0.75: ties


def test_f2_table_pairs_paper_layers_only_at_the_papers_depth(shallow, tmp_path):
    shallow_layers = tb.sparsity_layers(tb.sparsity_long(shallow)).set_index(["variant", "layer"])
    tern = shallow_layers.loc["ternary"]
    assert tern.loc[["L1", "L2", "L3", "L4"], "paper_zero_pct"].isna().all()  # never our L1 vs their L1
    assert tern.at["Emb", "paper_zero_pct"] == 35  # the embedding is the embedding at any depth
    assert tern.loc[["L1", "L4"], "paper_layer_at_depth"].tolist() == ["L2", "L11"]
    assert tern.at["L2", "paper_zero_pct_at_depth"] == paper.PAPER["sparsity_pct"].value["L5"]
    assert shallow_layers.loc["fp32", "paper_zero_pct"].isna().all()  # the paper's values are ternary
    one_seed = {"seeds": [0], "convergence": {"seeds": [0]}}
    deep = _art(tmp_path, one_seed | {"finetune": {"tasks": []}, "bench": {"devices": []}})
    deep_layers = tb.sparsity_layers(tb.sparsity_long(deep)).set_index(["variant", "layer"])
    assert deep_layers.at[("ternary", "L6"), "paper_zero_pct"] == 62
    assert "paper_zero_pct_at_depth" not in deep_layers


def _hand_sparsity(init: bool) -> pd.DataFrame:
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for i, layer in enumerate(["Emb", "L1", "L2"]):
            now = 0.31 + 0.1 * i + shift
            row = {"variant": "ternary", "seed": seed, "layer": layer, "layer_index": i}
            row |= {"module": "embedding" if i == 0 else "all", "quantized": i > 0, "frac_zero": now}
            rows.append(row | ({"frac_zero_init": 0.31} if init else {}))
    return pd.DataFrame(rows)


def test_f2_change_from_init_when_the_init_statistics_exist():
    layers = tb.sparsity_layers(_hand_sparsity(init=True)).set_index("layer")
    # per seed (now - init) then averaged: L2 is (0.51 - 0.31, 0.53 - 0.31) -> 21 pp
    assert layers.at["L2", "change_pp_mean"] == pytest.approx(21.0)
    assert layers.at["L2", "init_zero_pct_mean"] == pytest.approx(31.0)
    fig = fg.plot_sparsity(layers.reset_index(), tb.gaussian_zero_pct())
    assert len(fig.axes) == 2
    assert [round(b.get_height(), 6) for b in fig.axes[1].patches[:3]] == pytest.approx([1.0, 11.0, 21.0])
    plain = tb.sparsity_layers(_hand_sparsity(init=False))
    assert "change_pp_mean" not in plain
    assert len(fg.plot_sparsity(plain, tb.gaussian_zero_pct()).axes) == 1


def test_f2_reference_line_and_fixed_heatmap_scale(shallow):
    sp = tb.sparsity_long(shallow)
    init = tb.gaussian_zero_pct()
    fig = fg.plot_sparsity(tb.sparsity_layers(sp), init)
    (ref,) = [ln for ln in fig.axes[0].lines if ln.get_gid() == "init_expectation"]
    assert set(ref.get_ydata()) == {init}
    modules = tb.sparsity_modules(sp)
    assert modules["zero_pct_mean"].max() - modules["zero_pct_mean"].min() < 10  # a narrow data range
    heat = fg.plot_sparsity_modules(modules, init)
    for ax in heat.axes[:-1]:  # the last axes is the colour bar
        (im,) = ax.images
        assert (im.norm.vmin, im.norm.vmax) == (0.0, 100.0)


# --- T4 / T5 and the fine-tuning curves -----------------------------------------------------------------


def test_glue_tables_have_a_scratch_row_only_when_on(shallow, no_controls):
    t4 = tb.glue_table(shallow, ["mrpc"])
    scratch = t4[(t4["model"] == tb.MODEL_NAMES[SCRATCH]) & (t4["split"] == "dev")]
    assert len(scratch) == 1 and scratch["note"].iat[0].startswith("control")
    assert scratch["f1_mean"].iat[0] == pytest.approx(81.0)  # fakes: 81.5 + seed - 1, seeds 0 and 1
    assert (t4["model"] == "majority class").any()
    # MCC beside F1/accuracy for every measured row: the majority class has MCC 0 however high its F1
    measured = t4[t4["kind"] == "measured"]
    assert (
        measured["mcc_mean"].notna().all()
        and (measured.loc[measured["model"] == "majority class", "mcc_mean"] == 0).all()
    )
    off = tb.glue_table(no_controls, ["mrpc"])
    assert not off["model"].str.contains("scratch").any()
    assert set(tb.finetune_table(shallow)["variant"]) == {"ternary", "fp32", SCRATCH}
    assert set(tb.finetune_table(no_controls)["variant"]) == {"ternary", "fp32"}


def test_finetune_curves_show_scratch_paper_and_majority(shallow):
    curves = tb.finetune_curves(shallow)
    assert SCRATCH in set(curves["variant"])
    metric = {t: paper.TASK_METRIC[t] for t in shallow.tasks}
    ref = tb.paper_task_values(shallow.tasks)
    assert ref == {"mrpc": 82.47, "sst2": 88.92}
    fig = fg.plot_finetune_curves(curves, metric, {"mrpc": 81.22, "sst2": 68.38}, ref)
    mrpc = fig.axes[1]
    (line,) = [ln for ln in mrpc.lines if ln.get_gid() == "paper"]
    assert set(line.get_ydata()) == {82.47}
    assert any(
        ln.get_label().startswith("majority class") and set(ln.get_ydata()) == {81.22} for ln in mrpc.lines
    )
    scratch = [ln for ln in mrpc.lines if ln.get_label() == tb.MODEL_NAMES[SCRATCH]]
    assert len(scratch) == 1 and scratch[0].get_linestyle() == "--"
    # every legend sits right of its panel: none covers a line or a band
    fig.canvas.draw()
    for ax in fig.axes:
        legend = ax.get_legend()
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1


def test_saved_png_carries_its_caption(tmp_path):
    fig, ax = fg.plt.subplots()
    ax.plot([0, 1], [0, 1])
    fg.save(fig, tmp_path, "f", caption="*Figure X.* What it **shows**.")
    (text,) = [t for t in fig.texts if t.get_gid() == "caption"]
    assert text.get_text() == "Figure X. What it shows."  # Markdown marks dropped
    assert (tmp_path / "f.png").stat().st_size > 0 and (tmp_path / "f.pdf").exists()


# --- T6 ------------------------------------------------------------------------------------------------


def test_t6_says_device_kind_memory_kinds_and_iqr(shallow):
    t6 = tb.t6_efficiency(shallow)
    assert dict(zip(t6["device"], t6["device_kind"], strict=True)) == {
        "paper": "GPU",
        "cpu": "CPU",
        "cuda": "GPU",
    }
    ours, cited = t6[t6["device"] != "paper"], t6[t6["device"] == "paper"]
    assert cited["weight_mb"].isna().all() and ours["inference_mb"].isna().all()  # kinds never mixed
    cpu = ours[ours["device"] == "cpu"].set_index("column")
    assert cpu.at["ternary", "ms_per_token_iqr"] == pytest.approx(0.1 * 3.0)  # fakes: IQR = ms / 10
    assert cpu.at["ternary", "threads"] == 2
    from ternarylm.report.efficiency_figures import plot_efficiency

    fig = plot_efficiency(t6)
    titles = [ax.get_title() for ax in fig.axes]
    assert "ours on cpu (CPU, 2 threads)" in titles and "ours on cuda (GPU)" in titles
    latency = fig.axes[4]  # second row, second column: ours on cpu
    (bars,) = [c for c in latency.containers if getattr(c, "errorbar", None) is not None]
    segs = bars.errorbar.lines[2][0].get_segments()
    half = [abs(s[1][1] - s[0][1]) / 2 for s in segs]
    assert half == pytest.approx((cpu.loc[["fp32", "int8", "ternary"], "ms_per_token_iqr"] / 2).tolist())


# --- the paper-size CPU benchmark figure ---------------------------------------------------------------


def _cpu_plot_module():
    spec = importlib.util.spec_from_file_location("cpu_plot", ROOT / "benchmarks" / "cpu" / "plot.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cpu_benchmark_plot_runs_on_the_committed_csv(tmp_path):
    proc = subprocess.run(
        [sys.executable, "benchmarks/cpu/plot.py", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    for ext in ("png", "pdf"):
        assert (tmp_path / f"results.{ext}").stat().st_size > 10_000
    mod = _cpu_plot_module()
    df = mod.load(ROOT / "benchmarks" / "cpu" / "results.csv")
    env = mod.read_json(ROOT / "benchmarks" / "cpu" / "env.json")
    fig = mod.plot(df, env)
    assert "on CPU" in fig._suptitle.get_text() and "2 threads" in fig._suptitle.get_text()
    assert "131.8M parameters" in fig._suptitle.get_text()
    latency = fig.axes[0]
    assert "ms/token" in latency.get_xlabel() and latency.get_xscale() == "log"
    b1 = df[df["batch"] == 1]
    widths = [b.get_width() for b in latency.patches if b.get_gid() == "ms_per_token"]
    assert widths == pytest.approx(b1["ms_per_token"].tolist())
    # the QAT checkpoint run as float never passes for a deployed form
    hatched = {
        (v, f) for (v, f), b in zip(zip(b1["variant"], b1["format"]), latency.patches) if b.get_hatch()
    }
    assert ("ternary", "torch-fp32") in hatched and ("ternary", "gguf-tq2_0") not in hatched


def test_cpu_benchmark_plot_missing_csv_is_a_user_error(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/cpu/plot.py",
            "--csv",
            str(tmp_path / "none.csv"),
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("results.*"))


def test_f1_paper_star_labels_do_not_touch():
    fig, ax = fg.plt.subplots(figsize=(10, 4.6))
    ax.plot([0, 15], [0, 5])
    ax.set_xlim(0, 16.5)
    fg._star_labels(ax, [4.70, 4.32, 4.61], 15)
    fig.canvas.draw()
    boxes = sorted((t.get_window_extent() for t in ax.texts), key=lambda b: b.y0)
    assert [t.get_text() for t in sorted(ax.texts, key=lambda t: t.get_position()[1])] == [
        "4.32",
        "4.61",
        "4.70",
    ]
    assert all(lower.y1 <= upper.y0 for lower, upper in zip(boxes, boxes[1:]))
