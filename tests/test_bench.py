"""The benchmark: results.csv and env.json of a real run on the tiny twins (conftest), which rows are
deployed forms, what each device plans, and the settings read from config.yaml."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from ternarylm.io import UserError
from ternarylm.model import load_model

torch.set_num_threads(1)


def test_bench_writes_csv_and_env(twins, tokenizer_path, tmp_path):
    from ternarylm.bench import COLUMNS, FORMATS, bench_settings, markdown_table, run_bench

    settings = bench_settings(
        {
            "bench": {
                "new_tokens": 3,
                "prompt_tokens": 4,
                "batch_sizes": [1, 2],
                "threads": 1,
                "warmup": 0,
                "repeats": 4,
                "budget_s": 1e-9,  # every format "too slow": timed runs fall to the floor of 3
                "formats": ["torch-fp32", "torch-nocache", "torch-packed", "gguf-tq2_0"],
            }
        }
    )
    out = tmp_path / "bench" / "results.csv"
    run_bench([twins["ternary"], twins["fp32"]], out, settings, "cpu", tokenizer_path)
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        assert reader.fieldnames == COLUMNS
    try:
        import llama_cpp  # noqa: F401

        formats = {"torch-fp32", "torch-packed", "gguf-tq2_0"}
    except ImportError:
        formats = {"torch-fp32", "torch-packed"}
    seen = {(r["variant"], r["format"], int(r["batch"])) for r in rows}
    expected = {(v, f, b) for f in formats for v in FORMATS[f].variants for b in (1, 2)}
    expected.add(("ternary", "torch-nocache", 1))  # the seed-style form: batch 1 only
    assert seen == expected
    for r in rows:
        assert float(r["ms_per_token"]) > 0 and float(r["weight_mb"]) > 0
        assert int(r["repeats"]) == 3 and float(r["ms_per_token_iqr"]) >= 0
        assert float(r["peak_rss_mb"]) >= float(r["load_rss_mb"]) > 0
        assert (
            float(r["peak_rss_mb"]) >= float(r["rss_mb"]) > 0
            and float(r["peak_rss_mb"]) >= float(r["base_rss_mb"]) > 0
        )
        assert float(r["tokens_per_s"]) == pytest.approx(
            int(r["batch"]) * 1000 / float(r["ms_per_token"]), rel=1e-2
        )
    by = {(r["variant"], r["format"], r["batch"]): float(r["weight_mb"]) for r in rows}
    assert by[("ternary", "torch-packed", "1")] < 0.3 * by[("fp32", "torch-fp32", "1")]
    assert markdown_table(out, batch=1).count("\n") == 2 + sum(r["batch"] == "1" for r in rows)
    env = json.loads((out.parent / "env.json").read_text())
    assert env["threads"] == 1 and env["torch"] == torch.__version__ and "cpu_model" in env
    assert (env["provenance"]["threads"], env["provenance"]["device"]) == (1, "cpu")  # the workers' setting
    assert not list(out.parent.glob(".bench-*"))  # exported files cleaned up
    roles = {(r["variant"], r["format"]): r["role"] for r in rows}
    assert roles[("ternary", "torch-packed")] == "deployed" and roles[("fp32", "torch-fp32")] == "deployed"
    assert roles[("ternary", "torch-fp32")] == roles[("ternary", "torch-nocache")] == "baseline"


def test_bench_says_in_words_why_a_format_was_not_measured(twins, tokenizer_path, tmp_path, monkeypatch):
    """The README's core install has no llama-cpp-python: its GGUF rows are recorded as skipped,
    with the reason the efficiency page prints, and the packed CPU form still gives a ternary row."""
    import json
    import sys

    from ternarylm.bench import bench_settings, run_bench

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now raises ImportError
    bench = {"new_tokens": 2, "prompt_tokens": 2, "batch_sizes": [1], "threads": 1, "warmup": 0}
    bench |= {"repeats": 3, "budget_s": 1e-9, "formats": ["torch-packed", "gguf-tq2_0"]}
    out = tmp_path / "results.csv"
    rows = run_bench([twins["ternary"]], out, bench_settings({"bench": bench}), "cpu", tokenizer_path)
    assert [(r["format"], r["role"]) for r in rows] == [("torch-packed", "deployed")]
    skipped = json.loads((tmp_path / "env.json").read_text())["skipped_formats"]
    assert list(skipped) == ["gguf-tq2_0"] and "llama-cpp-python is not installed" in skipped["gguf-tq2_0"]


def test_bench_roles_and_plan():
    from ternarylm.bench import FORMATS, plan, row_role
    from ternarylm.report.formats import ROLES

    assert row_role("torch-packed", "ternary", "cpu") == "deployed"
    assert row_role("torch-packed", "ternary", "cuda") == "baseline"  # dense dequantized cache
    assert row_role("gguf-tq2_0", "ternary", "cpu") == "deployed"
    assert {row_role(f, v, d) for f in FORMATS for v in FORMATS[f].variants for d in ("cpu", "cuda")} == set(
        ROLES
    )
    settings = {"formats": list(FORMATS), "batch_sizes": [1, 32]}
    cuda = dict(plan("ternary", settings, "cuda", have_llama=False))
    assert cuda == {
        "torch-fp32": [1, 32],
        "torch-nocache": [1],
        "torch-bf16": [1, 32],
        "torch-packed": [1, 32],
        "torch-w2": [1, 32],  # the deployed GPU forms (tests/test_w2.py)
        "hf-bitnet": [1, 32],
    }
    assert "torch-int8" in dict(plan("fp32", settings, "cpu", have_llama=True))
    assert "torch-int8" not in dict(plan("fp32", settings, "cuda", have_llama=True))


def test_iqr():
    from ternarylm.bench_worker import iqr

    assert iqr([3.0]) == 0.0
    assert iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2.0)
    assert iqr([5.0, 1.0, 3.0]) == pytest.approx(2.0)


def test_lean_load_model_equals_the_default(twins):
    """load_model(lean=True) builds on meta and assigns the file's tensors (the weights held once, as
    the bench's memory rows need): the same outputs as the default loader, and it draws no random numbers."""
    idx = torch.randint(5, 300, (2, 9), generator=torch.Generator().manual_seed(2))
    for d in twins.values():
        state = torch.get_rng_state()
        lean = load_model(d, lean=True)
        assert torch.equal(torch.get_rng_state(), state)
        with torch.no_grad():
            assert torch.equal(lean(idx), load_model(d)(idx))
        assert all(p.requires_grad and p.device.type == "cpu" for p in lean.parameters())
        assert all(b.device.type == "cpu" for b in lean.buffers())


def test_bench_settings_validate_formats():
    import os

    import yaml

    from ternarylm.bench import bench_settings
    from ternarylm.config import DEFAULTS_PATH

    # the package's defaults file is the root config.yaml itself (a link), not a copy
    assert DEFAULTS_PATH.resolve() == (Path(__file__).resolve().parents[1] / "config.yaml").resolve()
    root = yaml.safe_load(DEFAULTS_PATH.read_text())["bench"]
    settings = bench_settings({"bench": {"devices": ["cpu"], "new_tokens": 7}})
    # defaults come from the root config.yaml (no second defaults dict), the preset wins
    assert settings["batch_sizes"] == root["batch_sizes"] and settings["new_tokens"] == 7
    assert root["threads"] is None and settings["threads"] == len(os.sched_getaffinity(0))
    assert bench_settings({"bench": {"threads": 3}})["threads"] == 3
    with pytest.raises(UserError, match="unknown"):
        bench_settings({"bench": {"formats": ["gguf-q4"]}})
