"""The paper rehearsal preset is the paper preset shrunk only in sizes: same jobs,
rule for rule and wildcard for wildcard, so every path the paper run takes except CUDA runs in CI
(.ci/run runs it end to end; this file only dry-runs, in seconds)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "workflow" / "presets" / "paper-rehearsal.yaml"
# what the rehearsal may change besides sizes: where things are, and the CPU instead of a GPU
NOT_SIZES = {"results_dir", "hf_mirror", "data_dir", "train.device", "train.threads", "bench.threads"}


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    else:
        yield ".".join(path), node


def _is_size(value) -> bool:
    if isinstance(value, list):
        return all(_is_size(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def test_rehearsal_overrides_only_sizes():
    paper = dict(_leaves(yaml.safe_load((REPO / "config.yaml").read_text())))
    for key, value in _leaves(yaml.safe_load(PRESET.read_text())):
        assert key in paper, f"{key}: not a key of config.yaml"
        assert key in NOT_SIZES or _is_size(value), f"{key}: {value!r} is not a size"
        assert key in NOT_SIZES or _is_size(paper[key]) or paper[key] is None, key


def _jobs(tmp_path: Path, *preset: str) -> Counter:
    """(rule, wildcards) of every job of a fresh run, from the dry run's job list."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--config", f"results_dir={tmp_path}"]
    cmd[3:3] = ["--configfile", *preset] if preset else []
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    jobs, rule = Counter(), None
    for line in (out.stdout + out.stderr).splitlines():
        if m := re.match(r"(?:local)?rule (\w+):$", line):
            if rule:
                jobs[rule] += 1
            rule = m.group(1)
        elif rule and (m := re.match(r"\s+wildcards: (.*)$", line)):
            jobs[f"{rule} {m.group(1)}"] += 1
            rule = None
    if rule:
        jobs[rule] += 1
    return jobs


def test_rehearsal_runs_the_paper_presets_jobs(tmp_path):
    paper = _jobs(tmp_path / "paper")
    rehearsal = _jobs(tmp_path / "rehearsal", str(PRESET))
    assert sum(paper.values()) > 50 and "preflight" in paper and "prepare corpus=shakespeare" in paper
    # 3 tasks x (2 twins + the scratch control) x 3 seeds
    assert sum(n for j, n in paper.items() if j.startswith("finetune")) == 27
    assert rehearsal == paper, (rehearsal - paper, paper - rehearsal)
