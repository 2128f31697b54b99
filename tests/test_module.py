"""The workflow deployed with snakedeploy (used as a module from another folder) plans the same
jobs as the repository; config/config.yaml is the root config.yaml, not a copy that can drift."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, copy_workflow, snakemake

SMOKE = "workflow/presets/smoke.yaml"


def test_config_folder_is_the_root_config():
    assert (ROOT / "config" / "config.yaml").resolve() == (ROOT / "config.yaml").resolve()
    readme = (ROOT / "config" / "README.md").read_text()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    # every top-level key and every key of a section is explained
    for key, value in config.items():
        assert f"`{key}`" in readme or f"`{key}." in readme, key
        for sub in value if isinstance(value, dict) else []:
            assert f"`{key}.{sub}`" in readme or f"`{sub}`" in readme, f"{key}.{sub}"


def test_ci_config_is_the_smoke_preset():
    assert (ROOT / ".test" / "config" / "config.yaml").resolve() == (ROOT / SMOKE).resolve()


def planned_jobs(dry_run_output: str) -> set[tuple[str, str]]:
    """{(rule, outputs)} of every job a dry run prints."""
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        head = re.match(r"(?:local)?rule (\w+):", block)
        out = re.search(r"^\s+output: (.*)$", block, re.M)
        if head:
            jobs.add((head.group(1), out.group(1) if out else ""))
    return jobs


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> tuple[Path, Path]:
    """(source, deployment): snakedeploy deploy-workflow of a copy of this working tree."""
    if shutil.which("snakedeploy") is None:
        pytest.skip("snakedeploy is not installed (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("module")
    src, dest = copy_workflow(tmp / "src"), tmp / "deployed"
    # a local folder is "cloned" by copying it; --branch names what a git source would check out
    subprocess.run(
        ["snakedeploy", "deploy-workflow", str(src), str(dest), "--branch", "main"],
        check=True,
        capture_output=True,
    )
    snakefile = dest / "workflow" / "Snakefile"
    text = snakefile.read_text()
    # snakedeploy 0.17's local provider declares the module as "workflow/Snakefile", relative to the
    # deployed Snakefile (it strips the source folder from a path that never held it); a GitHub
    # source gets github("owner/repo", path="workflow/Snakefile", branch=...). Point it at the copy.
    assert re.search(r'^\s+"workflow/Snakefile"$', text, re.M), text
    snakefile.write_text(text.replace('"workflow/Snakefile"', f'"{src / "workflow" / "Snakefile"}"'))
    assert (dest / "config" / "config.yaml").read_text() == (ROOT / "config.yaml").read_text()
    assert (dest / "profiles" / "default" / "config.yaml").exists()  # the GPU limit travels along
    return src, dest


def dry_run(cwd: Path, configfile: Path, *targets: str) -> set[tuple[str, str]]:
    r = snakemake(cwd, "-n", *targets, "--configfile", str(configfile), check=True)
    return planned_jobs(r.stdout)


def report_rules_are_module_ready() -> bool:
    # report.smk located its notebooks relative to the working directory before its rewrite
    return '"notebooks/' not in (ROOT / "workflow" / "rules" / "report.smk").read_text()


def test_deployed_module_plans_the_same_pipeline_jobs(deployed):
    src, dest = deployed
    repo_jobs = dry_run(src, src / SMOKE, "all")
    pipeline = [out for rule, out in repo_jobs if rule not in {"all"} and not rule.startswith("report")]
    targets = sorted({f for outs in pipeline for f in outs.split(", ")})
    assert len(targets) > 20
    expected = {job for job in repo_jobs if job[0] != "all" and not job[0].startswith("report")}
    assert dry_run(src, src / SMOKE, *targets) == expected
    assert dry_run(dest, src / SMOKE, *targets) == expected


def test_deployed_module_plans_the_same_default_target(deployed):
    if not report_rules_are_module_ready():
        pytest.skip("report.smk reads notebooks/ relative to the working directory (fixed by its rewrite)")
    src, dest = deployed
    assert dry_run(dest, src / SMOKE) == dry_run(src, src / SMOKE)


def test_module_runs_the_installed_entry_point():
    rules = "\n".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    assert "python -m ternarylm" not in rules
    assert shutil.which("ternarylm"), "pip install -e . installs the ternarylm command the rules run"
