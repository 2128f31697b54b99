"""`ternarylm preflight`: can this run read all its data? Checked in seconds, before any GPU job.

The paper run's data comes from the HF hub; a repo that moved, a script-only repo, a missing split
or a missing tokenizer used to surface hours in (a prepare job or a fine-tune after pretraining).
This stage resolves every source the config names without downloading the data: each corpus and
GLUE task (repo, revision, splits; ``datasets.load_dataset_builder`` lists the data files), the
pretrained tokenizer (fetched and checked: WordPiece with every special token), or the local
files. It reports every problem, one line each, and fails if there is any. The workflow's
``prepare`` jobs depend on its output, so nothing else starts when it fails.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from ternarylm import hub
from ternarylm.io import UserError, write_json

log = logging.getLogger("ternarylm.preflight")


def corpora(config: dict[str, Any]) -> list[str]:
    names = [config["main_corpus"], *(config.get("convergence_corpora") or [])]
    return list(dict.fromkeys(names))


def _check_corpus(corpus: str, config: dict[str, Any]) -> str:
    source = config["data_source"]
    if source == "synthetic" or corpus == "synthetic":
        return "synthetic (built in)"
    if source == "local":
        from ternarylm.data import LOCAL_FILES

        files = sorted({Path(config["data_dir"]) / f for f in LOCAL_FILES[corpus].values()})
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise UserError(f"{corpus}: missing local data file(s) {', '.join(missing)} (docs/data.md)")
        return ", ".join(map(str, files))
    repo, name, revision, splits, _ = hub.CORPUS_REPOS[corpus]
    hub.resolve(repo, name, revision, list(splits.values()), config)
    return f"{repo}" + (f"@{revision}" if revision else "") + f" {sorted(splits.values())}"


def _check_task(task: str, config: dict[str, Any]) -> str:
    from ternarylm.glue import has_split, local_path

    source = config["data_source"]
    if source == "synthetic":
        if task != "mrpc":
            raise UserError(f"data_source 'synthetic' provides only the mrpc task, not {task!r}")
        return "synthetic (built in)"
    local = [s for s in ("train", "dev", "test") if has_split(task, s) and (source == "local" or s == "test")]
    missing = [str(local_path(config, task, s)) for s in local if not local_path(config, task, s).is_file()]
    if source == "local" and missing:
        raise UserError(f"{task}: missing local task file(s) {', '.join(missing)} (docs/data.md)")
    if source == "local":
        return "local files"
    hub.resolve(hub.GLUE_REPO, task, None, list(hub.GLUE_SPLITS.values()), config)
    test = "no labeled test (MRPC test reported unavailable)" if missing else "labeled test local"
    return f"{hub.GLUE_REPO}/{task}" + (f"; {test}" if task == "mrpc" else "")


def _check_tokenizer(config: dict[str, Any]) -> str:
    from ternarylm.tokenizer import fetch_pretrained, load_pretrained

    name = (config.get("tokenizer") or {}).get("pretrained")
    if not name:
        return "learned from the main corpus"
    name = str(name)
    if not Path(name).exists() and not name.endswith(".json"):
        files = hub.locate(name, None, config, kind="model")  # one API call: no ~30 s of retries
        if files is not None and "tokenizer.json" not in files:
            raise UserError(f"tokenizer.pretrained={name!r}: the hub repo has no tokenizer.json")
    path = fetch_pretrained(name, config)
    return f"{name}: {load_pretrained(path).get_vocab_size()} entries ({path})"


def checks(config: dict[str, Any]) -> list[tuple[str, Any]]:
    """(what, zero-argument check) for every source this config reads."""
    out: list[tuple[str, Any]] = [
        (f"corpus {c}", lambda c=c: _check_corpus(c, config)) for c in corpora(config)
    ]
    tasks = (config.get("finetune") or {}).get("tasks") or []
    out += [(f"task {t}", lambda t=t: _check_task(t, config)) for t in tasks]
    out.append(("tokenizer", lambda: _check_tokenizer(config)))
    return out


def _located(config: dict[str, Any]) -> list[tuple[str, Any]]:
    """The cheap first pass (hf only): every repo exists, without importing ``datasets``."""
    if config.get("data_source") != "hf":
        return []

    def found(repo: str, revision: str | None) -> str:
        hub.locate(repo, revision, config)
        return f"{repo} found"

    out = [
        (f"corpus {c}", lambda c=c: found(hub.CORPUS_REPOS[c][0], hub.CORPUS_REPOS[c][2]))
        for c in corpora(config)
        if c in hub.CORPUS_REPOS
    ]
    if (config.get("finetune") or {}).get("tasks"):
        out.append(("GLUE", lambda: found(hub.GLUE_REPO, None)))
    return out


def _run(checks_: list[tuple[str, Any]]) -> tuple[dict[str, str], list[str]]:
    report, failed = {}, []
    for what, check in checks_:
        try:
            report[what] = check()
            log.info("ok   %s: %s", what, report[what])
        except UserError as e:
            log.error("FAIL %s: %s", what, e)
            failed.append(f"{what}: {e}")
    return report, failed


def preflight(config: dict[str, Any]) -> dict[str, str]:
    """Run every check; raise one UserError naming the first failure (each one is a line of the log).
    A repo that does not exist fails in the first, cheap pass, before the layout checks."""
    t0 = time.monotonic()
    _, failed = _run(_located(config))
    report: dict[str, str] = {}
    if not failed:
        report, failed = _run(checks(config))
    if failed:
        more = f" (and {len(failed) - 1} more above)" if len(failed) > 1 else ""
        raise UserError(f"preflight failed after {time.monotonic() - t0:.1f} s: {failed[0]}{more}")
    log.info("preflight: %d sources resolved in %.1f s", len(report), time.monotonic() - t0)
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, help="write what was resolved here (JSON)")


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    report = preflight(config)
    if args.out:
        write_json(args.out, {"data_source": config["data_source"], "resolved": report})
