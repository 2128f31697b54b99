"""Re-render this folder's claims.csv and claims.html from its committed artifacts (no retraining).

The files here are flat copies (``eval/ternary_seed0.json``, ...); this script lays them out as a
results folder in a temporary directory, runs the claims notebook there with the current claims
engine and copies claims.csv / claims.html back. Artifacts this folder does not hold (the model
folders' config.json, tokenizer.json) stay absent: the rows that need them say so.

    PYTHONPATH=. python benchmarks/realdata-mini/render_claims.py
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from ternarylm.report import run as report_run
from ternarylm.report.artifacts import Layout

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FLAT = re.compile(
    r"(?P<a>[a-z0-9-]+?)_(?P<b>[a-z0-9-]+?)_seed(?P<s>\d+)(?P<curve>_curve)?\.(?P<ext>json|csv)$"
)


def layout(results: Path) -> None:
    """Copy every flat artifact here to its place under ``results`` (ternarylm.report.artifacts)."""
    lay = Layout(results)
    config = json.loads((HERE / "config.resolved.json").read_text())
    main = config["main_corpus"]

    def put(src: Path, dst: str) -> None:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)

    for f in (HERE / "eval").glob("*.json"):
        v, s = re.match(r"(.+)_seed(\d+)\.json$", f.name).groups()
        put(f, lay.eval_json(main, v, s))
    for f in (HERE / "metrics").glob("*.csv"):
        m = FLAT.match(f.name)
        put(f, lay.metrics_csv(m["a"], m["b"], m["s"]))
    for f in (HERE / "finetune").glob("*"):
        m = FLAT.match(f.name)
        put(f, lay.finetune_file(m["a"], m["b"], m["s"], "curve.csv" if m["curve"] else "metrics.json"))
    for f in (HERE / "sparsity").glob("*.csv"):
        v, s = re.match(r"(.+)_seed(\d+)\.csv$", f.name).groups()
        put(f, lay.sparsity_csv(v, s))
    for f in (HERE / "manifests").glob("*.json"):
        corpus, _, rest = f.stem.partition("_")
        put(f, lay.manifest(corpus) if rest == "manifest" else lay.tokens(corpus, rest.split("_")[1], "json"))
    for device in config["bench"]["devices"]:
        put(HERE / "bench" / "results.csv", lay.bench_csv(device))
        put(HERE / "bench" / "env.json", lay.bench_env(device))
    (results / "config.resolved.json").write_text(json.dumps(config | {"results_dir": str(results)}))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="realdata-mini-") as tmp:
        results = Path(tmp) / "results"
        layout(results)
        config_path = results / "config.resolved.json"
        out = results / "notebooks"
        out.mkdir(parents=True)
        params = report_run.notebook_parameters(results, config_path)
        report_run.execute(ROOT / "notebooks" / "claims.ipynb", out / "claims.ipynb", params, "python3")
        report_run.fold_parameters(out / "claims.ipynb")
        report_run.render_html(out / "claims.ipynb", out / "claims.html")
        shutil.copyfile(results / "claims.csv", HERE / "claims.csv")
        shutil.copyfile(out / "claims.html", HERE / "claims.html")
    print(f"wrote {HERE / 'claims.csv'} and {HERE / 'claims.html'}")


if __name__ == "__main__":
    main()
