"""Docs that cannot drift: numbers and pictures in README.md and docs/ checked against what the code
and the committed runs produce. Each check fails on a stale value (the *_catches_* tests show it)."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess

import pandas as pd
import pytest
from helpers import ROOT

README = (ROOT / "README.md").read_text()
RDM = ROOT / "benchmarks" / "realdata-mini"
RDM_README = (RDM / "README.md").read_text()  # the README links it for the real-data findings


# --- README's smoke example rows == a smoke run's claims.csv ----------------------------------------


def readme_smoke_rows(text: str) -> dict[str, str]:
    """claim -> "ours (smoke)" cell of the README's example table."""
    block = text.split("| claim | paper | ours (smoke) |", 1)[1].split("\n\n", 1)[0]
    rows = [ln.split("|")[1:-1] for ln in block.strip().splitlines()[2:]]  # after the header, the ---
    return {r[0].strip(): r[2].strip() for r in rows}


def stale_smoke_rows(text: str, claims: pd.DataFrame) -> list[str]:
    """README rows whose "ours" differs from the claims.csv row the README claim begins."""
    out = []
    for claim, ours in readme_smoke_rows(text).items():
        hit = claims[claims["claim"].str.contains(re.escape(claim), regex=True)]
        if hit.empty or hit["ours"].iat[0] != ours:
            out.append(f"{claim}: README {ours}, run {hit['ours'].tolist()}")
    return out


def test_readme_smoke_rows_check_catches_a_stale_value():
    claims = pd.DataFrame(
        {
            "claim": [
                "synthetic val PPL of the ternary model, label-smoothed (exp …)",
                "SST-2 dev accuracy of …",
            ],
            "ours": ["3.81 ± 0.06", "not run"],
        }
    )
    rows = readme_smoke_rows(README)
    assert len(rows) == 3
    stale = stale_smoke_rows(README, claims)
    assert any(s.startswith("val PPL of the ternary model") for s in stale)  # 3.84 in README vs 3.81


@pytest.mark.slow
def test_readme_smoke_rows_match_a_smoke_run(smoke_run):
    assert stale_smoke_rows(README, pd.read_csv(smoke_run / "claims.csv")) == []


# --- README's real-data paragraph == the committed realdata-mini artifacts --------------------------


def realdata_numbers() -> dict[str, str]:
    """The numbers the README's "On real data" paragraph quotes, recomputed from benchmarks/realdata-mini."""
    ev = {
        v: [json.loads((RDM / "eval" / f"{v}_seed{s}.json").read_text()) for s in (0, 1)]
        for v in ("ternary", "fp32")
    }
    mean = {
        v: {k: statistics.fmean(e[k] for e in ev[v]) for k in ("val_ppl", "val_ppl_smoothed")} for v in ev
    }
    plain = 100 * (mean["ternary"]["val_ppl"] / mean["fp32"]["val_ppl"] - 1)
    smooth = 100 * (mean["ternary"]["val_ppl_smoothed"] / mean["fp32"]["val_ppl_smoothed"] - 1)
    return {
        "plain gap": f"{plain:.1f} % behind FP32",
        "pair": f"({mean['ternary']['val_ppl']:.2f} vs {mean['fp32']['val_ppl']:.2f};",
        "smoothed gap": f"{smooth:.1f} % label-smoothed",
    }


def test_readme_realdata_paragraph_matches_the_committed_run():
    text = " ".join(RDM_README.split())
    missing = {k: v for k, v in realdata_numbers().items() if v not in text}
    assert missing == {}


def test_realdata_check_catches_a_stale_value():
    stale = " ".join(RDM_README.replace("4.6 % behind", "4 % behind").split())
    assert realdata_numbers()["plain gap"] not in stale


# --- docs/rulegraph.{dot,png} == the workflow's rules ------------------------------------------------


def declared_rules() -> set[str]:
    """Every rule of workflow/rules/*.smk and the Snakefile (report_{notebook} from its loop, and the
    rules declared by inheritance: `use rule finetune as finetune_scratch`)."""
    from ternarylm.report.artifacts import NOTEBOOKS

    names: set[str] = set()
    for f in [*(ROOT / "workflow" / "rules").glob("*.smk"), ROOT / "workflow" / "Snakefile"]:
        text = f.read_text()
        names |= set(re.findall(r"^rule (\w+):", text, flags=re.M))
        names |= set(re.findall(r"^use rule \w+ as (\w+)", text, flags=re.M))  # inherited rules
    return names | {f"report_{nb}" for nb in NOTEBOOKS}


def graph_rules(dot_text: str) -> set[str]:
    return set(re.findall(r'label = "(\w+)"', dot_text))


def test_rulegraph_names_every_rule():
    dot_text = (ROOT / "docs" / "rulegraph.dot").read_text()
    assert declared_rules() - graph_rules(dot_text) == set(), "run docs/rulegraph.sh"
    assert {"deploy", "deploy_hf", "finetune_scratch", "convergence"} <= graph_rules(dot_text)


def test_rulegraph_check_catches_a_missing_rule():
    dot_text = (ROOT / "docs" / "rulegraph.dot").read_text().replace('"finetune_scratch"', '"x"')
    assert declared_rules() - graph_rules(dot_text) == {"finetune_scratch"}


@pytest.mark.skipif(
    shutil.which("dot") is None, reason="graphviz's dot is not installed (apt-get install graphviz)"
)
def test_rulegraph_png_is_the_rendering_of_the_dot(tmp_path):
    png = tmp_path / "g.png"
    subprocess.run(
        ["dot", "-Tpng", "-Gdpi=72", str(ROOT / "docs" / "rulegraph.dot"), "-o", str(png)], check=True
    )
    assert png.read_bytes() == (ROOT / "docs" / "rulegraph.png").read_bytes(), "run docs/rulegraph.sh"


# --- sentences that drifted -------------------------------------------------------------------------


def test_docs_say_what_the_install_and_the_deploy_folder_hold():
    deps = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[0]
    deploy_md = " ".join((ROOT / "docs" / "deploy.md").read_text().split())
    assert '"gguf' in deps and "`gguf` (a core dependency" in deploy_md
    smk = (ROOT / "workflow" / "rules" / "deploy.smk").read_text()
    # the ternary twin ships hf + hf-bitnet + GGUF, the FP32 twin hf + GGUF
    assert '["hf", "hf-bitnet"] if v == "ternary" else ["hf"]' in smk
    assert "the ternary twin also as `hf-bitnet/`" in " ".join(README.split())


def test_models_md_lm_eval_reads_the_run_s_own_corpus():
    models = (ROOT / "docs" / "models.md").read_text()
    cmd = models.split("## lm-evaluation-harness", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert "results/data/$CORPUS/val.txt" in cmd and "tinystories/val.txt" not in cmd
    assert "main_corpus" in cmd
