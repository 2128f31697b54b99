"""benchmarks/gpu/first_run.sh dry-runs on CPU: every step passes and writes its output, both
interrupted runs log that they resumed, and the dry run takes the GPU run's code paths: bf16
autocast, an inductor compile, a paper-size model, every GPU bench format, an eager paper_finetune.
Each part fits one 10-minute command by its step timeouts."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu" / "first_run.sh"
# (part, step) in the order the dry run records them; check_w2 is skipped on CPU
STEPS = [
    ("1", "env"),
    ("1", "config"),
    ("1", "data"),
    ("1", "pretrain"),
    ("1", "evaluate"),
    ("2", "finetune"),
    ("2", "paper_finetune"),
    ("3", "bench"),
    ("4", "train_throughput"),
    ("5", "check_w2"),
]
GPU_FORMATS = {"torch-fp32", "torch-nocache", "torch-bf16", "torch-packed"}


def test_every_part_fits_a_ten_minute_command():
    """The step timeouts of each part (GPU settings) add up to at most 9 minutes."""
    text = SCRIPT.read_text()
    gpu = dict(re.findall(r"(T_SHORT|T_LONG)=(\d+)", text.split("else # smoke-size")[1])[:2])
    limits = {"$T_SHORT": int(gpu["T_SHORT"]), "$T_LONG": int(gpu["T_LONG"])}
    setup = 30 + limits["$T_SHORT"]  # config + data, when a part runs first
    for part, body in re.findall(r"^    (\d)\) (.*) ;;$", text, flags=re.M):
        steps = re.findall(r"step \w+ \"?(\$T_SHORT|\$T_LONG|\d+)\"?", body)
        total = sum(limits.get(s) or int(s) for s in steps) + setup * ("setup" in body)
        assert steps and total <= 540, (part, total)


def test_first_run_dry_run_on_cpu(tmp_path):
    out = tmp_path / "first_run"
    env = {**os.environ, "DEVICE": "cpu", "TINY": "1", "OUT": str(out), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        ["bash", str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    with open(out / "summary.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [(r["part"], r["step"]) for r in rows] == STEPS
    summary = {r["step"]: r for r in rows}
    failed = {
        s: (out / f"{s}.log").read_text()[-1500:]
        for s, r in summary.items()
        if r["status"] not in ("passed", "skipped")
    }
    assert not failed, failed
    assert summary["check_w2"]["status"] == "skipped"
    assert proc.returncode == 0, proc.stderr[-2000:]
    seconds = {p: sum(int(r["seconds"]) for r in rows if r["part"] == p) for p, _ in STEPS}
    print("dry-run seconds per part:", seconds)  # the acceptance 4 reads these
    for name in ("pretrain", "finetune"):
        assert "resumed" in (out / f"{name}.2").read_text(), name
        assert "SIGTERM" in (out / f"{name}.log").read_text(), name
    assert json.loads((out / "env.json").read_text())["device"] == "cpu"
    assert json.loads((out / "evaluate.json").read_text())
    assert json.loads((out / "finetune_metrics.json").read_text())
    paper_ft = json.loads((out / "paper_finetune.json").read_text())
    assert paper_ft["ms_per_step_incl_eval"] > 0 and paper_ft["compile"] is False  # eager, as the paper run
    # bf16 autocast on the CPU, as the GPU run's pretraining
    assert json.loads((out / "work" / "config.json").read_text())["train"]["precision"] == "bf16"
    tput = list(csv.DictReader(open(out / "train_throughput" / "results.csv")))
    assert tput and all(r["status"] == "ok" for r in tput)
    assert "ternary/compiled" in {r["config"] for r in tput}  # a CPU inductor compile ran
    bench = list(csv.DictReader(open(out / "bench" / "results.csv")))
    assert {r["role"] for r in bench} == {"deployed", "baseline"}
    assert {r["format"] for r in bench} == GPU_FORMATS
    twin = json.loads((out / "work" / "paper_build" / "ternary" / "config.json").read_text())["model"]
    paper = yaml.safe_load((REPO / "config.yaml").read_text())["model"]
    assert {k: twin[k] for k in paper if k in twin} == {k: v for k, v in paper.items() if k in twin}
