"""Re-render this folder's report notebooks (HTML beside claims.html) from the committed artifacts.

    PYTHONPATH=. python benchmarks/realdata-mini/render.py [--tokenizer PATH]

The committed files are flat (eval/ternary_seed0.json); the notebooks read the results layout
(eval/tinystories/ternary/seed0.json). This links each committed file to its layout path in a
temporary folder and runs `ternarylm report`'s steps there with the current code, writing
notebooks/NAME.html here, and claims.csv + claims.html beside this script. A notebook whose inputs
are not all committed is skipped with the first missing artifact named (pretraining needs the twins'
model.safetensors, which are not committed); claims is rendered from what is committed, each row
naming the record it lacks (the model folders' config.json; tokenizer.json unless --tokenizer gives
one, rebuilt in seconds from ../shared/data by
`snakemake --cores 2 --configfile workflow/presets/realdata-mini.yaml --config results_dir=/tmp/rdm -- /tmp/rdm/tokenizer/tokenizer.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from ternarylm.report import run as report_run
from ternarylm.report.artifacts import NOTEBOOKS, Artifacts

HERE = Path(__file__).resolve().parent


def link_tree(root: Path, cfg: dict, tokenizer: Path | None) -> None:
    """Committed flat files -> the results layout under ``root`` (symlinks, nothing copied)."""
    art = Artifacts(root, cfg)
    main = cfg["main_corpus"]
    pairs: list[tuple[Path, str]] = []
    for f in (HERE / "eval").glob("*_seed*.json"):
        variant, seed = f.stem.rsplit("_seed", 1)
        pairs.append((f, art.eval_json(main, variant, seed)))
    for f in (HERE / "metrics").glob("*_seed*.csv"):
        corpus, rest = f.stem.split("_", 1)
        variant, seed = rest.rsplit("_seed", 1)
        pairs.append((f, art.metrics_csv(corpus, variant, seed)))
    for f in (HERE / "finetune").glob("*_seed*.json"):
        task, rest = f.stem.split("_", 1)
        variant, seed = rest.rsplit("_seed", 1)
        pairs.append((f, art.finetune_file(task, variant, seed, "metrics.json")))
        pairs.append(
            (f.with_name(f"{f.stem}_curve.csv"), art.finetune_file(task, variant, seed, "curve.csv"))
        )
    for f in (HERE / "sparsity").glob("*_seed*.csv"):
        variant, seed = f.stem.rsplit("_seed", 1)
        pairs.append((f, art.sparsity_csv(variant, seed)))
    for corpus in cfg["convergence_corpora"]:
        pairs.append((HERE / "manifests" / f"{corpus}_manifest.json", art.manifest(corpus)))
        for split in ("train", "val"):
            pairs.append(
                (HERE / "manifests" / f"{corpus}_tokens_{split}.json", art.tokens(corpus, split, "json"))
            )
    pairs += [
        (HERE / "bench" / "results.csv", art.bench_csv("cpu")),
        (HERE / "bench" / "env.json", art.bench_env("cpu")),
    ]
    if tokenizer:
        pairs.append((tokenizer.resolve(), art.tokenizer_json()))
    for src, dst in pairs:
        if src.exists():
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(src, dst)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--tokenizer", type=Path, help="tokenizer.json of this preset (rebuilt: see the docstring)"
    )
    args = p.parse_args()
    config_path = HERE / "config.resolved.json"
    cfg = json.loads(config_path.read_text())
    out = HERE / "notebooks"
    with tempfile.TemporaryDirectory(prefix="rdm-render-") as tmp:
        root = Path(tmp) / cfg["results_dir"]
        link_tree(root, cfg, args.tokenizer)
        art = Artifacts(root, cfg)
        rendered: list[str] = []
        for nb in NOTEBOOKS:
            missing = art.missing(nb)
            # claims renders whatever is committed: each row names the record it lacks ("no model
            # record", "no tokenizer record") instead of the page being skipped
            if missing and nb != "claims":
                print(
                    f"{nb}: skipped, not committed: {os.path.relpath(missing[0], root)} (+{len(missing) - 1})"
                )
                continue
            params = report_run.notebook_parameters(root, config_path)
            report_run.execute(
                report_run.TEMPLATES / f"{nb}.ipynb", Path(tmp) / f"{nb}.ipynb", params, "python3"
            )
            report_run.fold_parameters(Path(tmp) / f"{nb}.ipynb")
            report_run.render_html(Path(tmp) / f"{nb}.ipynb", Path(tmp) / f"{nb}.html")
            rendered.append(nb)
        # into this folder only after every kernel ran: a page written earlier would make the
        # checkout dirty for the footers of the pages after it
        for nb in rendered:
            page = HERE / "claims.html" if nb == "claims" else out / f"{nb}.html"
            shutil.copy(Path(tmp) / f"{nb}.html", page)
            print(f"{nb}: {page}")
        if "claims" in rendered:
            shutil.copy(art.claims_csv(), HERE / "claims.csv")
        for fig in Path(art.figures_dir()).glob("*.png"):
            shutil.copy(fig, HERE / "figures" / fig.name)


if __name__ == "__main__":
    main()
