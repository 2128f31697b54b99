"""Shared fixtures: one smoke-DAG run per test session (used by the slow tests). Plain helpers and
constants are in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import copy_workflow, snakemake

torch.set_num_threads(1)


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
