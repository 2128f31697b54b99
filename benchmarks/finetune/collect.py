"""Copy a run's fine-tuning metrics into benchmarks/finetune/<name>/ and summarise them.

    python benchmarks/finetune/collect.py --results results-realdata-mini --name realdata-mini \
        --command "snakemake --cores 2 --configfile workflow/presets/realdata-mini.yaml ..."

Writes <name>/{task}_{variant}_seed{s}.json and ..._curve.csv (the stage's outputs, unchanged),
<name>/summary.csv (one row per task x variant: mean and std over seeds of the dev/test metrics,
beside the majority-class baseline on the same examples) and <name>/run.json (command, results
folder, the resolved finetune config, versions).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
from pathlib import Path

from ternarylm.io import atomic_path, write_csv, write_json

HERE = Path(__file__).resolve().parent


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for task, variant in sorted({(m["task"], m["variant"]) for m in runs}):
        ms = sorted(
            (m for m in runs if (m["task"], m["variant"]) == (task, variant)), key=lambda m: m["seed"]
        )
        row = {"task": task, "variant": variant, "seeds": " ".join(str(m["seed"]) for m in ms)}
        for split in ("dev", "test"):
            if ms[0].get(split) is None:
                continue
            row[f"{split}_n"] = ms[0][split]["n"]
            for metric in ("f1", "accuracy", "mcc"):
                mean, std = _mean_std([m[split][metric] for m in ms])
                row[f"{split}_{metric}_mean"], row[f"{split}_{metric}_std"] = round(mean, 2), round(std, 2)
                row[f"majority_{split}_{metric}"] = round(ms[0]["majority"][split][metric], 2)
        row["selected_epochs"] = " ".join(str(m["selected_epoch"]) for m in ms)
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, type=Path, help="results folder of the run")
    p.add_argument("--name", required=True, help="sub-folder of benchmarks/finetune to write")
    p.add_argument("--command", required=True, help="the exact command that produced the run")
    args = p.parse_args()
    out = HERE / args.name
    runs = []
    for path in sorted((args.results / "finetune").glob("*/*/seed*/metrics.json")):
        m = json.loads(path.read_text())
        runs.append(m)
        stem = f"{m['task']}_{m['variant']}_seed{m['seed']}"
        write_json(out / f"{stem}.json", m)
        curve = path.with_name("curve.csv")
        if curve.exists():
            with atomic_path(out / f"{stem}_curve.csv") as tmp:
                shutil.copyfile(curve, tmp)
    if not runs:
        raise SystemExit(f"no finetune/*/*/seed*/metrics.json under {args.results}")
    rows = summarise(runs)
    write_csv(out / "summary.csv", rows)
    config_path = args.results / "config.resolved.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    import torch

    write_json(
        out / "run.json",
        {
            "command": args.command,
            "results": str(args.results),
            "finetune_config": config.get("finetune"),
            "model_config": config.get("model"),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "machine": platform.machine(),
        },
    )
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
