"""benchmarks/gpu/first_run.sh dry-runs on CPU: every step passes and writes
its output, and both interrupted runs log that they resumed."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = [
    "env",
    "config",
    "data",
    "pretrain",
    "evaluate",
    "finetune",
    "paper_finetune",
    "train_throughput",
    "bench",
]


def test_first_run_dry_run_on_cpu(tmp_path):
    out = tmp_path / "first_run"
    env = {**os.environ, "DEVICE": "cpu", "TINY": "1", "OUT": str(out), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu" / "first_run.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    with open(out / "summary.tsv", newline="") as f:
        summary = {r["step"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert list(summary) == STEPS
    failed = {
        s: (out / f"{s}.log").read_text()[-1500:] for s, r in summary.items() if r["status"] != "passed"
    }
    assert not failed, failed
    assert proc.returncode == 0, proc.stderr[-2000:]
    for step in STEPS:
        assert (out / f"{step}.log").exists(), step
    for name in ("pretrain", "finetune"):
        assert "resumed" in (out / f"{name}.2").read_text(), name
        assert "SIGTERM" in (out / f"{name}.log").read_text(), name
    assert json.loads((out / "env.json").read_text())["device"] == "cpu"
    assert json.loads((out / "evaluate.json").read_text())
    assert json.loads((out / "finetune_metrics.json").read_text())
    assert json.loads((out / "paper_finetune.json").read_text())["ms_per_step_incl_eval"] > 0
    tput = list(csv.DictReader(open(out / "train_throughput" / "results.csv")))
    assert tput and all(r["status"] == "ok" for r in tput)
    bench = list(csv.DictReader(open(out / "bench" / "results.csv")))
    assert {r["role"] for r in bench} == {"deployed", "baseline"}
