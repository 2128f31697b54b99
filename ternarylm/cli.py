"""`ternarylm <stage> --config FILE ...` — one subcommand per pipeline stage.

Stage modules are imported only when their stage runs, so e.g. the report stage works in an
environment without torch. A user mistake (``UserError``) prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ternarylm.config import canonical, resolve, validate_config
from ternarylm.gpus import pin_for_stage
from ternarylm.io import EXTRAS, UserError, load_config, setup_logging

# stage -> (module, help)
STAGES: dict[str, tuple[str, str]] = {
    "check-config": ("ternarylm.config", "validate config.yaml + --configfile presets as Snakemake would"),
    "preflight": (
        "ternarylm.preflight",
        "resolve every dataset and the tokenizer the config reads, in seconds",
    ),
    "prepare": (
        "ternarylm.data",
        "write a corpus' train/val text from HF, local files or the synthetic corpus",
    ),
    "tokenizer": ("ternarylm.tokenizer", "learn (or load) the WordPiece tokenizer"),
    "tokenize": ("ternarylm.encode", "encode a split to a uint16 token stream"),
    "pretrain": ("ternarylm.train", "pretrain a ternary or fp32 twin (resumes from its checkpoint)"),
    "evaluate": ("ternarylm.evaluate", "val/train loss and perplexity, with and without label smoothing"),
    "finetune": ("ternarylm.finetune", "fine-tune a pretrained twin on MRPC / SST-2 / CoLA"),
    "sparsity": ("ternarylm.sparsity", "per-layer ternary code statistics"),
    "bench": ("ternarylm.bench", "memory and latency benchmarks"),
    "export": ("ternarylm.export", "export a twin to GGUF (llama.cpp) or packed safetensors"),
    "generate": ("ternarylm.generate", "generate text with the torch or llama.cpp backend"),
    "report": ("ternarylm.report.run", "execute a papermill notebook and render it to HTML"),
    "mechanisms": ("ternarylm.report.mechanisms", "mechanism rows at our scale, with their figures"),
}


def _stage_from_argv(argv: Sequence[str]) -> str | None:
    """The first positional argument (options come before it or after it, never values)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in STAGES else None


def build_parser(stage: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ternarylm", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (module, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "--config", help="resolved config (JSON/YAML); default: config.yaml", default="config.yaml"
        )
        if name == stage:  # import only the module of the stage that runs
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stage = _stage_from_argv(argv)
    log = logging.getLogger("ternarylm")
    try:
        args = build_parser(stage).parse_args(argv)
        setup_logging(args.verbose)
        # config.yaml under the given config (as the Snakefile merges presets), then the same schema and
        # cross-field checks: a stage run by hand with a partial config gets the pipeline's defaults;
        # keys sorted as in the Snakefile's run configs (the order of what stages record, e.g. config.json)
        config = validate_config(canonical(resolve(load_config(args.config))), str(args.config))
        pin_for_stage(args.stage, args, config)  # before torch initialises CUDA: one free GPU per job
        importlib.import_module(STAGES[args.stage][0]).run(args, config)
    except ModuleNotFoundError as e:
        if e.name not in EXTRAS:
            raise
        setup_logging()
        log.error("%s is not installed: pip install 'ternarylm[%s]'", e.name, EXTRAS[e.name])
        return 2
    except UserError as e:
        setup_logging()
        log.error("%s", e)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    return 0
