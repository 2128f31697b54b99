"""The paper preset's time budget is computed from the config, not typed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ternarylm import budget

REPO = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_budget_counts_every_pretraining_run_and_scales_with_tokens(tmp_path):
    cfg = {**_config(), "results_dir": str(tmp_path)}  # no tokenized data: the estimates
    runs = budget.pretrain_runs(cfg)
    # 3 seeds x (2 twins + the fp32-noncausal control) on the main corpus + WritingPrompts and
    # Shakespeare convergence runs
    assert len(runs) == 11 and {r["corpus"] for r in runs} == {"tinystories", "writingprompts", "shakespeare"}
    assert sum("fp32-noncausal" in r["name"] for r in runs) == 3
    wp = next(r for r in runs if r["corpus"] == "writingprompts")
    assert 0.8e9 < wp["tokens"] < 1.0e9  # the issue's ~0.9B tokens
    fast, slow = budget.total_seconds(cfg, 500_000), budget.total_seconds(cfg, 46_000)
    assert 2 * 3600 < fast < 3.5 * 3600 and 16 * 3600 < slow < 21 * 3600
    # the controls cost what they train: without them the budget shrinks by their runs
    off = {**cfg, "controls": {"noncausal": False, "scratch": False}}
    assert len(budget.pretrain_runs(off)) == 8 and budget.total_seconds(off, 500_000) < fast
    longer = copy.deepcopy(cfg)
    longer["train"]["epochs"] *= 2
    longer["convergence"]["epochs"] *= 2
    pretrain = [
        i for i, row in enumerate(budget.stage_seconds(cfg, 500_000)) if row[0].startswith("pretrain")
    ]
    assert len(pretrain) == 1
    i = pretrain[0]
    assert budget.stage_seconds(longer, 500_000)[i][1] == 2 * budget.stage_seconds(cfg, 500_000)[i][1]


def _rows(cfg: dict, tps: float = 500_000) -> dict[str, tuple[float, str]]:
    return {name.split(":")[0]: (s, how) for name, s, how in budget.stage_seconds(cfg, tps)}


def test_every_stage_has_a_row_and_unmeasured_rates_say_so(tmp_path):
    """Downloads, tokenize, deploy and report are counted; rates are labelled."""
    cfg = {**_config(), "results_dir": str(tmp_path)}
    rows = _rows(cfg)
    for stage in ("prepare", "tokenize", "pretrain", "fine-tune", "bench", "deploy", "report"):
        assert stage in rows and rows[stage][0] > 0, stage
    assert "target, unmeasured" in rows["prepare"][1] and "target, unmeasured" in rows["tokenize"][1]
    assert all("unmeasured" in name or "reported" in name for name in budget.THROUGHPUTS)
    # a mirror or local files download nothing; the rows that remain do not change
    local = _rows({**cfg, "data_source": "local"})
    assert "prepare" not in local and local["tokenize"] == rows["tokenize"]


def test_finetune_row_follows_the_compile_setting(tmp_path):
    """Eager (the paper preset): launch-bound, the same at any throughput. Compiled: a compile row
    per process, then token-bound steps that scale with the throughput."""
    cfg = {**_config(), "results_dir": str(tmp_path)}
    assert cfg["finetune"]["compile"] is False
    eager = _rows(cfg)["fine-tune"]
    assert "eager" in eager[1] and eager[0] == _rows(cfg, 46_000)["fine-tune"][0]
    on = {**cfg, "finetune": {**cfg["finetune"], "compile": "auto"}}
    names = [n for n, _, _ in budget.stage_seconds(on, 500_000) if n.startswith("fine-tune")]
    assert names == ["fine-tune compile: 27 processes", "fine-tune: 27 runs, compiled"]
    fast, slow = _rows(on)["fine-tune"][0], _rows(on, 250_000)["fine-tune"][0]
    assert slow == pytest.approx(2 * fast)


def test_measured_tokens_replace_the_estimate(tmp_path):
    cfg = {**_config(), "results_dir": str(tmp_path)}
    meta = tmp_path / "tokens" / "tinystories" / "train.json"
    meta.parent.mkdir(parents=True)
    meta.write_text('{"n_tokens": 1000000}')
    assert budget.corpus_train_tokens(cfg, "tinystories") == 1_000_000


def test_committed_budget_page_is_what_the_script_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    if any(
        (REPO / "results" / "tokens" / c / "train.json").exists() for c in _config()["convergence_corpora"]
    ):
        pytest.skip("real token counts in results/ change the page (by design)")
    out = tmp_path / "budget.md"
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "benchmarks" / "gpu" / "README.md").read_text())
    assert budget.main(["--config", "config.yaml", "--out", str(out), "--readme", str(readme)]) == 0
    rerun = "rerun: python -m ternarylm.budget --config config.yaml --out docs/budget.md --readme benchmarks/gpu/README.md"
    assert out.read_text() == (REPO / "docs" / "budget.md").read_text(), rerun
    assert readme.read_text() == (REPO / "benchmarks" / "gpu" / "README.md").read_text(), rerun
    total = budget.total_seconds(_config(), 500_000)
    assert budget._hms(total) in readme.read_text()  # the README quotes the page's total
