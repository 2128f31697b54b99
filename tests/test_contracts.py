"""The seams between parts: each enum of the config schema against the Python it names, the package
version against pyproject, the torch/pandas-free contract module, and one enumeration of the runs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib

import yaml
from helpers import ROOT

from ternarylm.config import SCHEMA_PATH, resolve

SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
DEFS, PROPS = SCHEMA["definitions"], SCHEMA["properties"]


def test_schema_enums_match_their_python_source():
    """A value added on one side only is either refused by the schema or unknown to the code."""
    from ternarylm.bench import FORMATS
    from ternarylm.data import CORPORA
    from ternarylm.glue import TASKS
    from ternarylm.layout import NONCAUSAL, TWINS
    from ternarylm.model import PROJECTIONS, VARIANTS

    assert DEFS["variant"]["enum"] == list(TWINS)
    assert list(VARIANTS) == [*TWINS, NONCAUSAL]
    assert DEFS["projection"]["enum"] == list(PROJECTIONS)
    assert set(DEFS["corpus"]["enum"]) == set(CORPORA)
    assert PROPS["finetune"]["properties"]["tasks"]["items"]["enum"] == list(TASKS)
    # read from both sources: a format added to bench.FORMATS without the schema (or back) fails here
    assert PROPS["bench"]["properties"]["formats"]["items"]["enum"] == list(FORMATS)


def test_package_version_is_pyprojects():
    import ternarylm

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert ternarylm.__version__ == pyproject["project"]["version"]
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(citation["version"]) == ternarylm.__version__


def test_workflow_imports_neither_torch_nor_pandas():
    """Every ternarylm module a rule file imports loads without torch or pandas (the Snakefile parses
    in any environment), and the torch stages import nothing from ternarylm.report."""
    modules = set()
    for smk in [ROOT / "workflow" / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk")]:
        modules |= set(re.findall(r"^from (ternarylm[\w.]*) import", smk.read_text(), re.M))
    assert "ternarylm.layout" in modules
    code = (
        f"import sys, {', '.join(sorted(modules))}; sys.exit(bool({{'torch', 'pandas'}} & set(sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
    for path in (ROOT / "ternarylm").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("ternarylm.report"), (
                    f"{path.name} imports {node.module}"
                )


def test_runs_are_enumerated_once_with_config_yaml_defaults():
    """Plan (the notebooks' inputs) and budget (the time table) take their runs from layout.runs, and a
    partial config gets config.yaml's values for what it lacks."""
    from ternarylm.budget import pretrain_runs
    from ternarylm.layout import NONCAUSAL, SCRATCH, Plan, runs

    base = resolve({})
    r = runs({"seeds": [0, 5]})
    assert r.main == [(base["main_corpus"], v, s) for v in base["variants"] for s in (0, 5)]
    assert r.noncausal == [(base["main_corpus"], NONCAUSAL, s) for s in (0, 5)]  # controls default on
    assert r.backbones == [*base["variants"], SCRATCH]
    # F1's run on the main corpus is a main run; the others are extra pretraining
    conv = base["convergence"]
    extra = [(c, v, s) for c in base["convergence_corpora"] for v in conv["variants"] for s in conv["seeds"]]
    assert r.convergence == [x for x in extra if x not in r.main]
    assert [x["name"] for x in pretrain_runs({"seeds": [0, 5]})] == [
        f"{c} {v} s{s}" for c, v, s in r.pretrain
    ]
    # a convergence seed the main runs lack is trained too (by the pretrain rule on the main corpus)
    off = runs({"convergence": {"seeds": [7]}})
    assert (base["main_corpus"], "ternary", 7) in off.convergence
    plan = Plan("results", {"seeds": [0, 5]})
    assert plan.main_runs() == r.main and plan.backbones == r.backbones
    assert (
        plan.epochs("shakespeare") == conv["epochs"]
        and plan.epochs(base["main_corpus"]) == base["train"]["epochs"]
    )
