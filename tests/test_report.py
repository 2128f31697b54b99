"""Sparsity statistics, report helpers (aggregation, verdicts), the `report` stage and its notebooks.

Fast tests use hand-made models and fake artifacts written by :func:`make_fake_results` in the
exact results layout; the slow ones execute the notebooks (fake artifacts, and the smoke DAG's).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import torch
import yaml
from fakes import ROOT, make_fake_results, merge

from ternarylm.cli import main as cli_main
from ternarylm.io import write_json
from ternarylm.model import PROJECTIONS, ModelConfig, build_model, save_model
from ternarylm.report import claims as cl
from ternarylm.report import paper
from ternarylm.report import tables as tb
from ternarylm.report.artifacts import NOTEBOOKS, Artifacts
from ternarylm.sparsity import FIELDS, code_stats, sparsity_rows


@pytest.fixture
def fake(tmp_path) -> tuple[Path, Path]:
    results = tmp_path / "results"
    return results, make_fake_results(results)


# --- (a) sparsity statistics ---------------------------------------------------------------------


def test_code_stats_known_codes():
    w = torch.tensor([[2.0, -2.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])  # alpha = 0.75
    s = code_stats(w)  # w / alpha = [2.67, -2.67, 0, 0, 2.67, 0, 0, 0] -> [1, -1, 0, 0, 1, 0, 0, 0]
    assert s["frac_zero"] == pytest.approx(5 / 8)
    assert s["frac_pos"] == pytest.approx(2 / 8)
    assert s["frac_neg"] == pytest.approx(1 / 8)
    assert s["alpha"] == pytest.approx(0.75)
    assert s["n_weights"] == 8


def _fill(t: torch.Tensor, pattern: list[float]) -> None:
    flat = torch.tensor(pattern).repeat(t.numel() // len(pattern) + 1)[: t.numel()]
    with torch.no_grad():
        t.copy_(flat.view_as(t))


@pytest.mark.parametrize("variant", ["ternary", "fp32"])
def test_sparsity_rows_hand_made_model(variant):
    cfg = ModelConfig(vocab_size=32, d_model=16, n_layers=2, n_heads=2, ffn_hidden=32, linear=variant)
    model = build_model(cfg, seed=0)
    _fill(model.tok_emb.weight, [1.0, 1.0, 1.0, -1.0])  # alpha 1 -> no zeros
    for i, block in enumerate(model.layers):
        for name in PROJECTIONS:
            lin = getattr(block.attn if name in ("q", "k", "v", "o") else block.mlp, name)
            # layer 1: [1, -1, 0, 0] (alpha 1); layer 2: [3, 3, -3, 0] (alpha 2.25 -> [1, 1, -1, 0])
            _fill(lin.weight, [2.0, -2.0, 0.0, 0.0] if i == 0 else [3.0, 3.0, -3.0, 0.0])
    rows = sparsity_rows(model)
    assert [r["layer"] for r in rows] == ["Emb"] + ["L1"] * 8 + ["L2"] * 8
    by = {(r["layer"], r["module"]): r for r in rows}
    emb = by[("Emb", "embedding")]
    assert emb["quantized"] is False and emb["frac_zero"] == 0 and emb["frac_pos"] == 0.75
    assert emb["n_weights"] == 32 * 16
    for name in PROJECTIONS:
        assert by[("L1", name)]["frac_zero"] == pytest.approx(0.5)
        assert by[("L1", name)]["frac_neg"] == pytest.approx(0.25)
        assert by[("L2", name)]["frac_zero"] == pytest.approx(0.25)
        assert by[("L2", name)]["frac_pos"] == pytest.approx(0.5)
        assert by[("L2", name)]["alpha"] == pytest.approx(2.25)
        assert by[("L1", name)]["quantized"] is (variant == "ternary")
    pooled = by[("L1", "all")]
    assert pooled["n_weights"] == 4 * 16 * 16 + 3 * 16 * 32
    assert pooled["frac_zero"] == pytest.approx(0.5) and pooled["alpha"] is None
    assert {r["variant"] for r in rows} == {variant}


def test_sparsity_cli_writes_csv(tmp_path):
    model = build_model(ModelConfig(vocab_size=32, d_model=16, n_layers=2, n_heads=2, ffn_hidden=32), seed=1)
    save_model(model, tmp_path / "run", {"variant": "ternary", "seed": 1})
    out = tmp_path / "sparsity" / "ternary" / "seed1.csv"
    assert (
        cli_main(
            [
                "sparsity",
                "--config",
                str(ROOT / "config.yaml"),
                "--model",
                str(tmp_path / "run"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    df = pd.read_csv(out)
    assert list(df.columns) == FIELDS
    assert len(df) == 1 + 2 * 8
    assert ((df["frac_zero"] + df["frac_pos"] + df["frac_neg"]) - 1).abs().max() < 1e-9
    # random Gaussian init: absmean ternarization zeros about 31 % of the weights
    assert 0.25 < df[df["module"] == "all"]["frac_zero"].mean() < 0.37
    # an untrained model of the recorded seed is its own initialisation
    assert (df["frac_zero_init"] - df["frac_zero"]).abs().max() < 1e-12


def test_sparsity_without_a_recorded_seed_leaves_init_empty(tmp_path, capfd):
    model = build_model(ModelConfig(vocab_size=32, d_model=16, n_layers=1, n_heads=2, ffn_hidden=32), seed=1)
    save_model(model, tmp_path / "run", {"variant": "ternary"})
    out = tmp_path / "seed1.csv"
    argv = ["sparsity", "--config", str(ROOT / "config.yaml"), "--model", str(tmp_path / "run")]
    assert cli_main([*argv, "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert df["frac_zero_init"].isna().all() and df["frac_zero"].notna().all()
    assert "config.json records no seed; frac_zero_init left empty" in capfd.readouterr().err


# --- (a) aggregation and verdicts -------------------------------------------------------------


def test_stat_mean_std():
    s = tb.Stat.of([1.0, 2.0, 3.0, None, float("nan")])
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    assert s.fmt(1) == "2.0 ± 1.0"
    one = tb.Stat.of([58.4])
    assert one.n == 1 and math.isnan(one.std) and one.fmt() == "58.40 (n=1)"
    assert tb.Stat.of([]).fmt() == paper.NOT_RUN


def test_aggregate_groups():
    df = pd.DataFrame({"v": ["a", "a", "b"], "x": [1.0, 3.0, 5.0]})
    agg = tb.aggregate(df, "v", ["x"]).set_index("v")
    assert agg.at["a", "x_mean"] == 2.0 and agg.at["a", "x_std"] == pytest.approx(math.sqrt(2))
    assert agg.at["b", "n"] == 1 and math.isnan(agg.at["b", "x_std"])


def test_verdicts():
    s = tb.Stat(58.0, 0.2, 3)
    assert cl.judge_close(s, 58.42, rel=0.05).verdict == paper.REPRODUCED
    assert cl.judge_close(s, 70.0, rel=0.05).verdict == paper.NOT_REPRODUCED
    v = cl.judge_close(s, 58.42, rel=0.05, reasons=["tiny model"])
    assert v.verdict == paper.NOT_COMPARABLE and "tiny model" in v.reason
    assert cl.judge_close(tb.Stat.of([]), 1.0, rel=0.1).verdict == paper.NOT_RUN
    assert cl.judge_close(tb.Stat(83.0, 1, 3), 82.47, abs_=2.0).verdict == paper.REPRODUCED
    # an inequality needs a margin: 88.0 > 87.5 is not "above" with a margin of 1 point
    assert cl.judge_above(tb.Stat(82.0, 1, 3), 87.5, margin=1).verdict == paper.NOT_REPRODUCED
    assert cl.judge_above(tb.Stat(88.0, 1, 3), 87.5, margin=1).verdict == paper.NOT_REPRODUCED
    assert cl.judge_above(tb.Stat(88.6, 1, 3), 87.5, margin=1).verdict == paper.REPRODUCED
    with pytest.raises(ValueError, match="positive margin"):
        cl.judge_above(tb.Stat(88.6, 1, 3), 87.5, margin=0.0)
    assert cl.judge_range(tb.Stat(59.0, 1, 3), 60, 62, tol=2).verdict == paper.REPRODUCED
    assert cl.judge_range(tb.Stat(50.0, 1, 3), 60, 62, tol=2).verdict == paper.NOT_REPRODUCED
    # two-sided: a factor far off either way fails
    assert cl.judge_factor(tb.Stat(0.3, 0, 1), 0.17, factor=3).verdict == paper.REPRODUCED
    assert cl.judge_factor(tb.Stat(0.6, 0, 1), 0.17, factor=3).verdict == paper.NOT_REPRODUCED
    assert cl.judge_factor(tb.Stat(0.05, 0, 1), 0.17, factor=3).verdict == paper.NOT_REPRODUCED
    # seed noise: 2 pooled std, never below 1 point
    assert cl.seed_margin(tb.Stat(80, 2.0, 3), tb.Stat(70, 0.0, 3)) == pytest.approx(2 * math.sqrt(2))
    assert cl.seed_margin(tb.Stat(80, 0.1, 3)) == paper.MIN_MARGIN
    parts = [cl.Verdict(paper.REPRODUCED, "a"), cl.Verdict(paper.NOT_REPRODUCED, "b")]
    assert cl.judge_all(parts) == cl.Verdict(paper.NOT_REPRODUCED, "a; b")


def test_comparability_from_the_model_records():
    """Comparability is read from what a model folder's config.json records, not the run config."""
    from ternarylm.report.claims import setup

    paper_cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    model = {**paper_cfg["model"], "vocab_size": 30522, "linear": "ternary"}
    meta = {"model": model, "train": paper_cfg["train"], "provenance": {"device": "cuda:0"}}
    assert setup.arch_reasons(meta, "config.json") == []
    assert setup.quant_reasons(meta, "ternary", "config.json") == []
    assert setup.train_reasons(meta, "config.json") == []
    smoke = merge(paper_cfg, yaml.safe_load((ROOT / "workflow/presets/smoke.yaml").read_text()))
    small = merge(meta, {"model": smoke["model"], "train": smoke["train"], "provenance": {"device": "cpu"}})
    (reason,) = setup.arch_reasons(small, "config.json")
    assert "d_model 256 (paper 768)" in reason and "n_layers 2 (paper 12)" in reason
    (reason,) = setup.train_reasons(small, "config.json")
    assert "epochs 1 (paper 15)" in reason and "trained on cpu (paper cuda)" in reason
    fp32_as_ternary = setup.quant_reasons(meta, "fp32", "x/config.json")
    assert fp32_as_ternary == ["FP32 twin is not full precision: linear ternary (x/config.json)"]
    (q,) = setup.quant_reasons(merge(meta, {"model": {"quantize": []}}), "ternary", "x")
    assert q.startswith("ternary twin quantizes none")


def test_epoch_means_weights_rows_by_steps():
    df = pd.DataFrame(
        {"step": [5, 10, 20, 30], "epoch": [0.25, 0.5, 1.0, 1.5], "train_loss": [4.0, 2.0, 1.0, 3.0]}
    )
    e = tb.epoch_means(df)
    assert list(e["epoch"]) == [1, 2]
    assert e["train_loss"].iat[0] == pytest.approx((5 * 4 + 5 * 2 + 10 * 1) / 20)
    assert e["train_loss"].iat[1] == pytest.approx(3.0)


def test_claims_on_fake_artifacts(fake):
    results, config_path = fake
    art = Artifacts.from_config_file(config_path, results)
    claims = cl.claims_table(art).set_index("claim")
    assert set(claims["verdict"]) <= {
        paper.REPRODUCED,
        paper.NOT_REPRODUCED,
        paper.NOT_COMPARABLE,
        paper.NOT_RUN,
    }
    # the fake model is tiny: every measured claim is "not comparable", and says why
    measured = claims[claims["verdict"] != paper.NOT_RUN]
    assert (measured["verdict"] == paper.NOT_COMPARABLE).all()
    assert measured["reason"].str.contains("d_model 64 (paper 768)", regex=False).sum() >= 5
    run_not = claims[claims["verdict"] == paper.NOT_RUN]
    assert any("writingprompts" in r for r in run_not["reason"])  # not in convergence_corpora
    assert any("cola" in r for r in run_not["reason"])  # not in finetune.tasks
    ppl = claims.loc[claims.index.str.contains("label-smoothed")].iloc[0]
    assert ppl["n_seeds"] == 3 and "±" in ppl["ours"]


def test_claims_verdicts_at_paper_scale(tmp_path):
    """With the paper's setup in the config the verdicts follow the numbers (claims read no weights).

    The fakes' default numbers: tests/test_claims.py moves each one until its verdict flips."""
    results = tmp_path / "results"
    config_path = make_fake_results(results, paper_scale=True)
    art = Artifacts.from_config_file(config_path, results)
    assert cl.pretrain_reasons(art) == []
    v = cl.claims_table(art).set_index("claim")["verdict"]

    def verdict(part: str) -> str:
        (hit,) = v[v.index.str.contains(part, regex=False)]
        return hit

    assert (
        verdict("val PPL of the ternary model, label-smoothed") == paper.NOT_REPRODUCED
    )  # e^3.65 = 38 vs 58.42
    assert verdict("true PPL") == paper.NOT_COMPARABLE
    assert verdict("loss ratio, Ternary") == paper.REPRODUCED  # 3.65 / 3.5 = 1.043 vs 1.05
    assert verdict("loss ratio, FP32") == paper.NOT_REPRODUCED  # 3.14 vs 3.51 (> 10 % off)
    assert verdict("implicit regularization") == paper.REPRODUCED  # gap 2.10 > 1.23
    # 82.5 is within 2 of 82.47 but only 1.28 above the majority class 81.22 (margin: 2 std = 2)
    assert verdict("MRPC dev F1") == paper.NOT_REPRODUCED
    assert verdict("above the majority-class") == paper.NOT_REPRODUCED
    assert verdict("non-trivial transfer on MRPC") == paper.NOT_REPRODUCED  # scratch 1 point below
    assert verdict("surpasses DistilBERT") == paper.NOT_REPRODUCED  # 82.5 < 87.5
    assert verdict("SST-2 dev") == paper.NOT_REPRODUCED
    assert verdict("CoLA") == paper.NOT_RUN
    # GPU claims: the cuda bench has no deployed ternary form (GGUF is CPU-only); CPU rows never decide
    assert verdict("inference memory (") == paper.NOT_RUN
    assert verdict("latency parity:") == paper.NOT_RUN
    assert verdict("inference memory on CPU") == paper.NOT_COMPARABLE
    assert verdict("latency parity on CPU") == paper.NOT_COMPARABLE
    assert verdict("embedding") == paper.NOT_COMPARABLE
    assert verdict("middle layers L5-L9") == paper.NOT_REPRODUCED  # random init: about 31 % zeros
    assert verdict("Gaussian-init expectation") == paper.NOT_REPRODUCED
    assert verdict("on TinyStories") == paper.NOT_REPRODUCED
    assert verdict("on WritingPrompts") == paper.NOT_RUN
    assert verdict("missing causal mask") == paper.NOT_REPRODUCED  # the fake control does not collapse
    assert verdict("55x less") == paper.NOT_REPRODUCED  # 507,060 tokens: 6,508x
    # the token count is read from tokenize's meta: 60M tokens is 55x less than 3.3B words
    meta = json.loads(Path(art.tokens(art.main, "train", "json")).read_text())
    write_json(art.tokens(art.main, "train", "json"), meta | {"n_tokens": 60_000_000})
    (data,) = cl.claims_table(art).set_index("claim").filter(like="55x less", axis=0)["verdict"]
    assert data == paper.REPRODUCED


# --- (b) the report stage ------------------------------------------------------------------------


def test_pick_rows_never_lets_a_baseline_stand_for_the_ternary_model():
    """A smaller baseline row (e.g. the GPU dense cache of the packed form) must not decide a verdict."""
    rows = [
        ("fp32", "torch-fp32", "deployed", 500.0, 40.0),
        ("fp32", "torch-int8", "deployed", 130.0, 30.0),
        ("ternary", "torch-packed", "baseline", 30.0, 150.0),
        ("ternary", "gguf-tq2_0", "deployed", 70.0, 5.0),
    ]
    bench = pd.DataFrame(
        [
            dict(variant=v, format=f, role=r, weight_mb=mb, ms_per_token=ms, batch=1, runtime=f.split("-")[0])
            for v, f, r, mb, ms in rows
        ]
    )
    assert tb.pick_rows(bench)["ternary"]["format"] == "gguf-tq2_0"
    # without the column (older CSVs) the smallest ternary form is taken, as before
    assert tb.pick_rows(bench.drop(columns="role"))["ternary"]["format"] == "torch-packed"


def test_missing_artifact_fails_naming_it(fake, tmp_path, capfd):
    results, config_path = fake
    gone = Path(Artifacts.from_config_file(config_path, results).eval_json("tinystories", "fp32", 1))
    gone.unlink()
    with pytest.raises(FileNotFoundError, match=str(gone)):
        tb.t2_val_ppl(Artifacts.from_config_file(config_path, results))
    argv = [
        "report",
        "--config",
        str(config_path),
        "--notebook",
        "pretraining",
        "--out-dir",
        str(tmp_path / "nb"),
    ]
    assert cli_main(argv) == 2
    assert f"missing artifact {gone}" in capfd.readouterr().err
    assert not (tmp_path / "nb" / "pretraining.ipynb").exists()


def test_t1_shows_the_data_scale_in_tokens(fake):
    """T1's token rows are the tokenize meta's n_tokens; a meta without it is an error, not a blank."""
    results, config_path = fake
    art = Artifacts.from_config_file(config_path, results)
    write_json(art.tokens(art.main, "val", "json"), {"n_tokens": 4321})
    t1 = tb.t1_model_config(art).set_index("setting")
    assert art.token_counts(art.main) == {"train": 2817 * 180, "val": 4321}
    assert t1.loc["train tokens"].iloc[0] == str(2817 * 180) and t1.loc["val tokens"].iloc[0] == "4321"
    write_json(art.tokens(art.main, "train", "json"), {"n_docs": 3})
    with pytest.raises(ValueError, match="no n_tokens"):
        art.token_counts(art.main)


def test_notebooks_have_parameters_cell_and_no_outputs():
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        for key in ("results_dir", "config_path", "tables_dir", "figures_dir"):
            assert f"{key} = " in tagged[0].source
        assert '"/' not in tagged[0].source, f"{name}: absolute path in the committed template"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), name


def test_report_rules_read_exactly_what_the_notebooks_read(tmp_path):
    """Each rule of report.smk's loop gets its own notebook's Artifacts.inputs (a loop variable
    bound late would hand every rule the last notebook's list)."""
    import re

    from helpers import copy_workflow, snakemake

    from ternarylm.config import merge
    from ternarylm.gpus import bench_devices

    wd = copy_workflow(tmp_path / "wf")
    proc = snakemake(wd, "-n", "--configfile", "workflow/presets/smoke.yaml", check=True)
    # a dry run writes no config file (only real runs do): merge the preset as Snakemake does
    cfg = merge(
        *(yaml.safe_load((wd / f).read_text()) for f in ("config.yaml", "workflow/presets/smoke.yaml"))
    )
    cfg["bench"]["devices"] = bench_devices(cfg["bench"]["devices"])  # as common.smk resolves null
    art = Artifacts("results", cfg)
    seen = set()
    for block in proc.stdout.split("\nrule ")[1:]:
        name = block.split(":")[0]
        if name.startswith("report_"):
            nb = name.removeprefix("report_")
            # the template comes through workflow.source_path: printed as "PATH (cached)"
            inputs = {
                p.removesuffix(" (cached)") for p in re.search(r"input: (.*)", block).group(1).split(", ")
            }
            templates = {p for p in inputs if p.endswith(f"notebooks/{nb}.ipynb")}
            assert len(templates) == 1, (nb, inputs)
            assert inputs - templates == set(art.inputs(nb)), nb
            seen.add(nb)
    assert seen == set(NOTEBOOKS)


def test_report_package_is_torch_free():
    """The boundary: every module of ternarylm.report imports without torch, and imports nothing
    from ternarylm outside ternarylm.report, ternarylm.io, ternarylm.provenance (the page footer) and the
    torch-free ternarylm.layout (and the config module it reads defaults with)."""
    import ast
    import subprocess
    import sys

    pkg = ROOT / "ternarylm" / "report"
    modules = sorted(f"ternarylm.report.{p.stem}" for p in pkg.glob("*.py") if p.stem != "__init__")
    assert {"ternarylm.report.paper", "ternarylm.report.artifacts", "ternarylm.report.run"} <= set(modules)
    code = f"import sys; import {', '.join(modules)}; sys.exit(3 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
    for path in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for n in names:
                if n.startswith("ternarylm"):
                    # ternarylm.provenance: torch-free by design (the page footer's commit + dirty flag)
                    allowed = ("ternarylm.report", "ternarylm.io", "ternarylm.layout", "ternarylm.config")
                    allowed += ("ternarylm.provenance",)
                    assert n.startswith(allowed), f"{path.name} imports {n}"


def test_footnotes_and_readable():
    from ternarylm.report.display import MISSING, footnotes, readable

    model = "smaller/different model: d_model=64 (paper 768), n_layers=2 (paper 12)"
    data = "synthetic offline corpus"
    why = f"{model}; {data}"
    reasons = pd.Series([f"{why} — ours 1 vs 2", f"{model} — ours 3 vs 4", "short", why, None])
    shown, notes = footnotes(reasons)
    assert notes == [model, data, why]  # each reason once, also when rows share only part of it
    assert shown.tolist() == ["[1, 2] ours 1 vs 2", "[1] ours 3 vs 4", "short", "[3]", MISSING]
    sources = footnotes(pd.Series(["paper", math.nan, "README", "paper"]), min_len=1)
    assert sources[0].tolist() == ["[1]", MISSING, "[2]", "[1]"] and sources[1] == ["paper", "README"]
    df = pd.DataFrame({"ms": [1.23456, math.nan], "name": ["a", None], "extra": [1, 2]})
    view = readable(df, {"ms": "latency (ms/token)", "name": "name"}, {"ms": 1})
    assert list(view.columns) == ["latency (ms/token)", "name"]
    assert view.values.tolist() == [["1.2", "a"], [MISSING, MISSING]]


# --- (c) slow: executed notebooks ------------------------------------------------------------------


def _check_rendered(results: Path, config: dict) -> None:
    art = Artifacts(results, config)
    for name in NOTEBOOKS:
        nb_path = results / "notebooks" / f"{name}.ipynb"
        assert nb_path.exists() and (results / "notebooks" / f"{name}.html").exists(), name
        nb = nbformat.read(nb_path, as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
        assert tags.count("parameters") == 1 and "injected-parameters" not in tags, name
        html = (results / "notebooks" / f"{name}.html").read_text()
        assert "from ternarylm.report" not in html and "Artifacts.from_config_file" not in html, name
        text = [o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", [])]
        assert not any(">NaN<" in "".join(t) or ">nan<" in "".join(t) for t in text), name
        for path in art.outputs(name):
            assert os.path.getsize(path) > 0, path
    claims = pd.read_csv(results / "claims.csv")
    assert list(claims.columns) == cl.CLAIM_FIELDS and len(claims) >= 15
    assert (
        claims["verdict"]
        .isin([paper.REPRODUCED, paper.NOT_REPRODUCED, paper.NOT_COMPARABLE, paper.NOT_RUN])
        .all()
    )


@pytest.mark.slow
def test_notebooks_on_fake_artifacts(fake):
    results, config_path = fake
    for name in NOTEBOOKS:
        assert cli_main(["report", "--config", str(config_path), "--notebook", name]) == 0, name
    _check_rendered(results, json.loads(config_path.read_text()))


@pytest.mark.slow
def test_smoke_run_notebooks(smoke_run):
    config = json.loads((smoke_run / "config.resolved.json").read_text())
    _check_rendered(smoke_run, config)
    claims = pd.read_csv(smoke_run / "claims.csv")
    measured = claims[claims["verdict"] != paper.NOT_RUN]
    assert (measured["verdict"] == paper.NOT_COMPARABLE).all()  # smoke preset: tiny model, synthetic data


def test_report_rule_declares_its_env_and_the_env_covers_the_stage():
    """report.smk's loop rule has no `rule NAME:` header, so tests/test_envs.py's per-rule
    checks do not see it: the same checks, here."""
    import re

    from test_envs import ENVS, REQUIRED_DIRECTIVES, missing_from_env, module_closure

    body = (ROOT / "workflow" / "rules" / "report.smk").read_text()
    loop = body[body.index("for nb in NOTEBOOKS:") :]
    for d in REQUIRED_DIRECTIVES:
        assert re.search(rf"^\s+{d}:", loop, re.M), d
    assert re.search(r"conda:\s*\n\s+\"\.\./\.\./envs/report\.yaml\"", loop)
    assert "ternarylm report " in loop  # the installed entry point, not python -m
    imports = module_closure({"ternarylm.cli", "ternarylm.report.run"})
    assert not missing_from_env(imports, ENVS / "report.yaml")
