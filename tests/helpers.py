"""Shared test helpers (plain functions and constants; fixtures live in conftest.py): the repository
paths, a copy of the workflow, a snakemake runner and its job counts, and tiny model/train configs.
Import them with ``from helpers import ...``; no test imports from conftest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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


# the smallest model every stage accepts (d_model and FFN multiples of 64, an even head size)
TINY_MODEL: dict[str, Any] = dict(d_model=64, n_layers=2, n_heads=4, ffn_hidden=128, seq_len=32, dropout=0.0)


def tiny_model(**overrides: Any) -> dict[str, Any]:
    """A tiny model config section (``TINY_MODEL`` with ``overrides``), a fresh dict each call."""
    return {**TINY_MODEL, **overrides}


# a training section small enough for CPU tests (compile off, one thread, checkpoints every 7 steps)
TINY_TRAIN: dict[str, Any] = dict(
    epochs=2,
    max_steps=None,
    batch_size=8,
    lr=3e-3,
    betas=[0.9, 0.98],
    weight_decay=0.01,
    warmup_frac=0.1,
    grad_clip=1.0,
    label_smoothing=0.1,
    eval_every=10,
    eval_batches=2,
    log_every=5,
    ckpt_every=7,
    keep_checkpoint=False,
    precision="auto",
    compile=False,
    device="cpu",
    threads=1,
)


def one_error_line(capfd) -> str:
    """The one ERROR line a CLI user error printed (never a traceback)."""
    err = capfd.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "ERROR" in line]
    assert len(lines) == 1, err
    return lines[0]


# a few TinyStories-like sentences: the tokenizer and token stream of the deploy/bench twins
SENTENCES = [
    "Once upon a time, there was a little girl named Lily.",
    "She loved to play outside in the sunshine with her dog, Max.",
    "One day, Lily found a shiny red ball under a big green tree.",
    '"Can I play with it?" asked Tom. Lily said, "Yes, let\'s share!"',
    "They played all day and had 3 apples and 12 cookies for lunch.",
    "The bird sang a happy song. The cat was sleepy and went to bed.",
    "Mom smiled and said: you are very kind, my little ones.",
    "At the end of the day, everyone was happy and tired.",
]
# the deploy/bench twins: d 256 so every input dim is a multiple of llama.cpp's 256-block
DEPLOY_TINY = dict(
    vocab_size=512, d_model=256, n_layers=2, n_heads=4, ffn_hidden=512, seq_len=64, dropout=0.0
)
