"""What every report page says about itself: the claims summary, the footer (which run made the
page), the tolerance reasons and cited values in words, and a spread that one timing cannot have."""

from __future__ import annotations

import datetime
import json

import pandas as pd
import pytest
import yaml
from helpers import ROOT

from ternarylm.report import pageinfo, paper_notes, summary
from ternarylm.report.display import spread
from ternarylm.report.paper import CITED_GLUE, PAPER, TOLERANCE


def claims(verdicts, at_scale=None) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "claim": [f"claim {i} (how): detail" for i in range(len(verdicts))],
            "verdict": verdicts,
            "reason": "r",
        }
    )
    if at_scale is not None:
        df["at_scale"] = at_scale
    return df


def test_summary_reads_verdicts_and_at_scale():
    table = claims(["not comparable"] * 3 + ["not run"], ["holds", "fails", "—", "—"])
    text = summary.summary(table, ["epochs=2 (paper 15)", "lr=0.001 (paper 0.0003)"], "smoke")
    lines = text.split("\n\n")
    assert 3 <= len(lines) <= 6
    assert "preset *smoke*" in lines[0] and "3 not comparable, 1 not run" in lines[0]
    assert "neither confirm nor refute" in text and "epochs, lr" in text
    assert "holds** (1): claim 0." in text and "fails** (1): claim 1." in text
    assert "Not run here** (1): claim 3" in text


def test_summary_at_paper_scale_names_judged_claims_and_tolerates_no_at_scale_column():
    text = summary.summary(
        claims(["reproduced", "not reproduced", "not run"]), [], "config.yaml (paper preset)"
    )
    assert "paper's setup" in text and "Reproduced** (1): claim 0" in text
    assert "Not reproduced** (1): claim 1" in text
    assert "no “at this scale” column" in text


def test_footer_names_commit_date_config_hash_preset_and_devices():
    cfg = json.loads((ROOT / "benchmarks" / "realdata-mini" / "config.resolved.json").read_text())
    now = datetime.datetime(2026, 12, 7, 4, 0, tzinfo=datetime.UTC)
    text = pageinfo.footer(cfg, now)
    assert "2026-12-07 04:00 UTC" in text and "commit `" in text
    assert f"config `{pageinfo.config_hash(cfg)}`" in text and "training on cpu" in text
    assert "preset **realdata-mini" in text


def test_config_hash_is_the_run_config_file_name():
    # common.smk names the run's config results/config/<sha256[:12] of its indented sorted JSON>.json
    import hashlib

    cfg = {"b": 1, "a": {"c": [1, 2]}}
    text = json.dumps(cfg, indent=2, sort_keys=True) + "\n"
    assert pageinfo.config_hash(cfg) == hashlib.sha256(text.encode()).hexdigest()[:12]


def test_preset_name_matches_each_preset_and_names_a_difference(tmp_path):
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    smoke = yaml.safe_load((ROOT / "workflow" / "presets" / "smoke.yaml").read_text())
    from ternarylm.config import merge

    cfg = merge(base, smoke) | {"results_dir": "/tmp/elsewhere"}
    assert pageinfo.preset_name(cfg) == "smoke"
    cfg["train"] = cfg["train"] | {"lr": 0.5}
    assert pageinfo.preset_name(cfg) == "smoke, except train.lr"
    assert pageinfo.preset_name(base) == "config.yaml (paper preset)"
    assert pageinfo.preset_name({"model": {"d_model": 3}}) == "custom"


def test_every_tolerance_has_a_reason_and_cited_values_are_words():
    assert set(paper_notes.TOLERANCE_REASONS) == set(TOLERANCE)
    tol = paper_notes.tolerance_table()
    assert tol["why"].str.len().min() > 20
    cited = paper_notes.cited_table()
    assert len(cited) == len(PAPER) + len(CITED_GLUE)
    assert not cited["value"].str.contains(r"[{}\[\]]|'\w+': ").any()  # no Python dicts or lists
    words = cited[cited["key"] == "distilbert words"]["value"].item()
    assert words == "3,300,000,000 words"
    assert cited["key"].is_unique  # the two BERT-base MRPC rows are told apart
    assert "fp32 1,197; int8 612; ternary 498 (MB)" in cited["value"].tolist()


@pytest.mark.parametrize(("repeats", "shown"), [(1, "— (1 run)"), (3, "0.125"), (None, "0.125")])
def test_spread_of_one_timing_is_not_zero(repeats, shown):
    df = pd.DataFrame({"ms_per_token_iqr": [0.125 if repeats != 1 else 0.0], "repeats": [repeats]})
    assert spread(df) == [shown]


def test_table_headers_align_with_their_left_aligned_cells():
    from ternarylm.report.display import show

    html = show(pd.DataFrame({"a": ["x"]})).to_html()
    assert "th {\n  text-align: left;" in html


# docs/claims.md "Setup choices" row -> PAPER["setup"] key it audits
SETUP_ROWS = {
    "tokens per step": "batch_size",
    "sequence length": "seq_len",
    "peak learning rate": "lr",
    "schedule": "warmup_frac",
    "epochs": "epochs",
    "pretraining data": "train_docs",
    "tokenizer": "tokenizer",
    "hardware": "device",
}


def test_one_place_says_which_setup_values_are_the_papers():
    assert set(paper_notes.SETUP_ORIGIN) == set(PAPER["setup"].value)
    # the docs' audit agrees: "n/c" in the paper-text column exactly where the origin is not the paper
    doc = (ROOT / "docs" / "claims.md").read_text().split("## Setup choices", 1)[1]
    rows = {
        ln.split("|")[1].strip(): ln.split("|")[2].strip() for ln in doc.splitlines() if ln.startswith("| ")
    }
    for row, key in SETUP_ROWS.items():
        not_in_paper = paper_notes.SETUP_ORIGIN[key] != paper_notes.IN_PAPER
        assert rows[row].startswith("n/c") == not_in_paper, row
    assert paper_notes.setup_value("lr") == "0.0003 (authors' notebook)"
    assert paper_notes.setup_value("epochs") == "15"
