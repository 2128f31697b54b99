"""`ternarylm report --config C --notebook NAME --out-dir results/notebooks`: run one report notebook.

1. Checks that every artifact the notebook reads exists (:meth:`Artifacts.inputs`) and fails
   naming the missing one otherwise — before starting a kernel.
2. Executes ``notebooks/NAME.ipynb`` with papermill (kernel from ``report.kernel``, default
   ``python3``), injecting ``results_dir``, ``config_path``, ``tables_dir``, ``figures_dir`` and
   ``claims_path`` into its ``parameters`` cell, into ``OUT_DIR/NAME.ipynb``. A failing notebook
   is kept as ``OUT_DIR/NAME.failed.ipynb`` and its error is reported in one line.
3. Folds papermill's injected cell into the ``parameters`` cell (one parameters cell in the
   executed notebook) and renders ``OUT_DIR/NAME.html`` with nbconvert, code hidden: the HTML
   reads as a report; the executed ``.ipynb`` keeps the code.
4. Checks the notebook wrote every table and figure it is expected to.

No torch import anywhere on this path (the report environment has none).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

from ternarylm.config import resolve
from ternarylm.io import UserError, atomic_path, write_text
from ternarylm.report.artifacts import NOTEBOOKS, Artifacts, Layout

log = logging.getLogger("ternarylm.report")

PACKAGE_PARENT = Path(__file__).resolve().parents[2]
TEMPLATES = PACKAGE_PARENT / "notebooks"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--notebook", required=True, choices=NOTEBOOKS, help="notebooks/NAME.ipynb to execute")
    p.add_argument("--out-dir", type=Path, help="executed notebook + HTML (default RESULTS/notebooks)")
    p.add_argument("--results-dir", type=Path, help="artifacts folder (default: config results_dir)")
    p.add_argument("--templates", type=Path, default=TEMPLATES, help="folder holding NAME.ipynb")
    p.add_argument("--kernel", help="Jupyter kernel (default: config report.kernel or python3)")


def notebook_parameters(results: Path, config_path: Path) -> dict[str, str]:
    """The values injected into a notebook's ``parameters`` cell (absolute, so the executed
    notebook reruns from any folder; the committed templates hold only relative defaults)."""
    layout = Layout(results.resolve())
    return {
        "results_dir": layout.root,
        "config_path": str(config_path.resolve()),
        "tables_dir": layout.tables_dir(),
        "figures_dir": layout.figures_dir(),
        "claims_path": layout.claims_csv(),
    }


def check_inputs(art: Artifacts, name: str) -> None:
    missing = art.missing(name)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(
            f"notebook {name}: missing artifact {missing[0]}{more}; run the stage that writes it first "
            f"(e.g. snakemake {missing[0]})"
        )


def execute(template: Path, out: Path, parameters: dict[str, Any], kernel: str) -> None:
    """papermill ``template`` -> ``out``; on failure keep ``*.failed.ipynb`` and raise UserError."""
    import papermill as pm

    out.parent.mkdir(parents=True, exist_ok=True)
    # the kernel imports this very ternarylm (rules run it from the working tree, not installed)
    path = os.environ.get("PYTHONPATH", "")
    if str(PACKAGE_PARENT) not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_PARENT), path) if p)
    running = out.with_name(f".{out.stem}.running.ipynb")
    failed = out.with_name(f"{out.stem}.failed.ipynb")
    try:
        pm.execute_notebook(
            str(template),
            str(running),
            parameters=parameters,
            kernel_name=kernel,
            cwd=os.getcwd(),
            progress_bar=False,
        )
    except pm.PapermillExecutionError as e:
        os.replace(running, failed)
        raise UserError(
            f"notebook {template.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue} (executed copy: {failed})"
        ) from None
    except BaseException:
        running.unlink(missing_ok=True)
        raise
    failed.unlink(missing_ok=True)
    os.replace(running, out)


def fold_parameters(path: Path) -> None:
    """Replace the template's ``parameters`` cell by papermill's injected one, in place."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    injected = next((i for i, t in enumerate(tags) if "injected-parameters" in t), None)
    template = next((i for i, t in enumerate(tags) if "parameters" in t), None)
    if injected is None or template is None:
        return
    nb.cells[template].source = nb.cells[injected].source
    del nb.cells[injected]
    with atomic_path(path) as tmp:
        nbformat.write(nb, str(tmp))


def render_html(notebook: Path, html: Path) -> None:
    from nbconvert import HTMLExporter

    # a report, not a program: hide code cells and In/Out prompts (the .ipynb keeps the code)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_filename(str(notebook))
    write_text(html, body)


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    name = args.notebook
    results = Path(args.results_dir or config["results_dir"])
    art = Artifacts(results, config)
    out_dir = Path(args.out_dir or art.notebooks_dir())
    check_inputs(art, name)
    template = Path(args.templates) / f"{name}.ipynb"
    if not template.exists():
        raise UserError(f"notebook template not found: {template}")
    params = notebook_parameters(results, Path(args.config))
    kernel = args.kernel or resolve(config)["report"]["kernel"]
    t0, started = time.perf_counter(), time.time() - 1.0
    execute(template, out_dir / f"{name}.ipynb", params, kernel)
    fold_parameters(out_dir / f"{name}.ipynb")
    render_html(out_dir / f"{name}.ipynb", out_dir / f"{name}.html")
    expected = [Path(p) for p in Artifacts(params["results_dir"], config).outputs(name)]
    lacking = [p for p in expected if not p.exists() or p.stat().st_mtime < started]
    if lacking:
        raise UserError(f"notebook {name} ran but did not write {lacking[0]}")
    log.info(
        "%s: executed in %.1fs -> %s (+ .html), %d outputs",
        name,
        time.perf_counter() - t0,
        out_dir,
        len(expected),
    )
