"""Numbers the docs state about the code, checked against the code (docs/budget.md is generated and
checked by test_budget): job counts, what `bench.threads: null` means, the README's size and set-up
lines, and no reference the repository cannot resolve."""

from __future__ import annotations

import os
import re

import pytest
from helpers import ROOT, copy_workflow, job_counts, snakemake

README = (ROOT / "README.md").read_text(encoding="utf-8")
PIPELINE = (ROOT / "docs" / "pipeline.md").read_text(encoding="utf-8")
TEXT_FILES = ("*.md", "*.py", "*.smk", "*.yaml", "*.sh", "Snakefile", "run")


def planned_jobs(tmp_path, configfile: str) -> int:
    wd = copy_workflow(tmp_path / "wf")
    r = snakemake(
        wd, "-n", "--configfile", configfile, "--config", f"results_dir={tmp_path / 'r'}", check=True
    )
    return job_counts(r.stdout)["total"]


def one(pattern: str, text: str) -> int:
    found = re.findall(pattern, text)
    assert len(found) == 1, f"{pattern!r}: {found}"
    return int(found[0])


def test_job_counts_in_docs_are_the_planned_ones(tmp_path):
    smoke = planned_jobs(tmp_path / "smoke", "workflow/presets/smoke.yaml")
    paper = planned_jobs(tmp_path / "paper", "config.yaml")
    assert one(r"\((\d+) jobs on a fresh smoke run\)", PIPELINE) == smoke
    assert one(r"--configfile config.yaml` plans (\d+) jobs", PIPELINE) == paper
    assert one(r"measured, (\d+) jobs\)", README) == smoke


def test_bench_threads_null_means_every_core_of_the_job():
    from ternarylm.bench import resolve_threads

    cores = len(os.sched_getaffinity(0))
    assert resolve_threads(None) == cores and resolve_threads(3) == 3
    bench_md = (ROOT / "docs" / "bench.md").read_text(encoding="utf-8")
    assert "null = every core the job\nmay use" in bench_md
    assert not re.search(r"null\s*=\s*\d", bench_md), "a number for null threads: it depends on the machine"
    assert re.search(r"threads: null +# null: every core", (ROOT / "config.yaml").read_text())


def test_readme_is_short_and_keeps_the_ci_commands():
    assert len(README.encode()) <= 8 * 1024
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^(?:smoke|tests)='(.+)'$", ci, re.M)
    assert len(commands) == 2
    head = README.split("## What you get")[0].splitlines()
    assert all(c in head for c in commands), "the two set-up lines .ci/run greps, at the top, verbatim"


@pytest.mark.parametrize("pattern", [r"\b[Ii]ssue \d+ item", r"# -+ item \d+", r"\bdesign(?:\.md)? §"])
def test_no_reference_the_repository_cannot_resolve(pattern):
    """Issue items and design sections live outside the repository: say the behaviour instead."""
    skip = {"results", ".git", ".snakemake", ".pytest_cache"}
    hits = []
    for glob in TEXT_FILES:
        for path in ROOT.rglob(glob):
            if skip & set(path.relative_to(ROOT).parts) or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            hits += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert hits == []
