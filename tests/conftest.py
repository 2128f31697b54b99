"""Shared fixtures: tiny data, and one smoke-DAG run per test session (used by the slow tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
# what a user's clone holds for running the workflow (profiles: the link to workflow/profiles, so the
# default profile applies as it does for users; config: the snakedeploy view of config.yaml)
WORKFLOW_FILES = ("Snakefile", "config.yaml", "config", "workflow", "profiles", "envs", "notebooks")


def copy_workflow(dst: Path) -> Path:
    """Copy the workflow definition (not results) into ``dst`` so tests never touch the repo's results/."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dst / name)
    return dst


def snakemake(
    cwd: Path, *args: str, check: bool = False, timeout: int = 1200, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run snakemake in ``cwd`` (targets/options first, then e.g. ``--configfile``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    if check and proc.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of ``snakemake -n`` into {rule: count}."""
    counts: dict[str, int] = {}
    lines = dry_run_output.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("Job stats"):
            for row in lines[i + 3 :]:
                parts = row.split()
                if len(parts) != 2 or not parts[1].isdigit():
                    break
                counts[parts[0]] = int(parts[1])
            break
    return counts


@pytest.fixture(scope="session")
def smoke_workdir(tmp_path_factory) -> Path:
    """A copy of the workflow in which the whole smoke DAG has run (once per session)."""
    wd = copy_workflow(tmp_path_factory.mktemp("smoke"))
    # 3-5 min alone; the timeout only guards against a hang (shared CI cores can make it 4x slower)
    snakemake(wd, "--cores", "2", "--configfile", "workflow/presets/smoke.yaml", check=True, timeout=3000)
    return wd


@pytest.fixture(scope="session")
def smoke_run(smoke_workdir: Path) -> Path:
    """The results folder of the smoke DAG run."""
    return smoke_workdir / "results"
