"""Fine-tuning task data: GLUE MRPC, SST-2 and CoLA from the HF hub, local files, or offline synthetic.

``load_split(task, split, config)`` returns a list of :class:`Example`. Splits are ``train``,
``dev`` (GLUE validation) and ``test`` (MRPC only: the labeled MSR test set).

Sources (config ``data_source``):

- ``hf``: ``datasets.load_dataset("nyu-mll/glue", task)`` (or its copy in ``hf_mirror``, ternarylm.hub). GLUE hides the test labels (-1), so the
  MRPC ``test`` split is read from the local ``{data_dir}/mrpc/test_labeled.txt`` when it exists
  (and is reported as unavailable otherwise).
- ``local``: files under ``data_dir`` (docs/data.md "Local files"):
  ``mrpc/{train.tsv,dev.tsv,test_labeled.txt}`` (UTF-8 with BOM, header
  ``Quality, #1 ID, #2 ID, #1 String, #2 String``), ``cola/{train,dev}.tsv`` (no header:
  source, label, original label, sentence), ``sst2/{train,dev}.tsv`` (header ``text, label``).
  Fields are tab-separated and never quoted (sentences contain literal ``"``).
- ``synthetic``: task ``mrpc`` is the built-in synthetic paraphrase task
  (:func:`ternarylm.synthetic.synthetic_pairs`; train 2000 / dev 400 / test 400, distinct seeds),
  so the smoke DAG runs offline. SST-2 and CoLA have no synthetic stand-in.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ternarylm.config import resolve
from ternarylm.io import UserError

TASKS = ("mrpc", "sst2", "cola")
SPLITS = ("train", "dev", "test")
# primary metric per task (GLUE convention): model selection and the headline number
PRIMARY_METRIC = {"mrpc": "f1", "sst2": "accuracy", "cola": "mcc"}
# default held-out model-selection metric: GLUE's task score. For MRPC that is mean(F1, acc),
# not F1 alone: on ~2/3-positive data a constant "paraphrase" predictor already has a high F1,
# so F1 alone would select degenerate epochs.
SELECTION_METRIC = {"mrpc": "f1_acc", "sst2": "accuracy", "cola": "mcc"}
PAIR_TASKS = frozenset({"mrpc"})

LOCAL_FILES = {
    ("mrpc", "train"): "mrpc/train.tsv",
    ("mrpc", "dev"): "mrpc/dev.tsv",
    ("mrpc", "test"): "mrpc/test_labeled.txt",
    ("cola", "train"): "cola/train.tsv",
    ("cola", "dev"): "cola/dev.tsv",
    ("sst2", "train"): "sst2/train.tsv",
    ("sst2", "dev"): "sst2/dev.tsv",
}
MRPC_HEADER = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
SST2_HEADER = ["text", "label"]  # GLUE's own files call the first column "sentence"; accept both
SYNTHETIC_SIZES = {"train": 2000, "dev": 400, "test": 400}
SYNTHETIC_SEEDS = {"train": 1001, "dev": 1002, "test": 1003}


@dataclass(frozen=True)
class Example:
    text_a: str
    text_b: str | None
    label: int


def check_task(task: str) -> None:
    if task not in TASKS:
        raise UserError(f"unknown fine-tuning task {task!r}; choose one of {', '.join(TASKS)}")


def has_split(task: str, split: str) -> bool:
    """Whether ``task`` has a labeled ``split`` at all (test: MRPC only)."""
    return split in ("train", "dev") or (split == "test" and task == "mrpc")


def local_path(config: dict[str, Any], task: str, split: str) -> Path:
    return Path(resolve(config)["data_dir"]) / LOCAL_FILES[(task, split)]


def load_split(task: str, split: str, config: dict[str, Any]) -> list[Example]:
    """Labeled examples of ``task``/``split`` from the configured ``data_source``."""
    check_task(task)
    if split not in SPLITS or not has_split(task, split):
        raise UserError(f"task {task!r} has no labeled {split!r} split")
    source = resolve(config)["data_source"]
    if source == "synthetic":
        return load_synthetic(task, split)
    if source == "local" or (source == "hf" and split == "test"):
        return read_local(task, local_path(config, task, split))
    if source == "hf":
        return load_hf(task, split, config)
    raise UserError(f"unknown data_source {source!r}; choose hf, local or synthetic")


def load_synthetic(task: str, split: str) -> list[Example]:
    if task != "mrpc":
        raise UserError(
            f"data_source 'synthetic' provides only the mrpc task (synthetic paraphrases), not {task!r}"
        )
    from ternarylm.synthetic import synthetic_pairs

    return [
        Example(a, b, int(y)) for a, b, y in synthetic_pairs(SYNTHETIC_SIZES[split], SYNTHETIC_SEEDS[split])
    ]


def load_hf(task: str, split: str, config: dict[str, Any] | None = None) -> list[Example]:
    """GLUE from the HF hub or ``hf_mirror`` (ternarylm.hub); failures are one line naming the repo."""
    from ternarylm import hub

    hub_split = hub.GLUE_SPLITS[split]
    ds = hub.load_split(hub.GLUE_REPO, task, None, hub_split, config or {})
    hub.check_columns(ds, f"{hub.GLUE_REPO}/{task}", hub_split, hub.GLUE_COLUMNS[task])
    out = []
    for row in ds:
        label = int(row["label"])
        if label < 0:
            raise UserError(f"{hub.GLUE_REPO}/{task} {hub_split} has hidden labels (-1)")
        if task == "mrpc":
            out.append(Example(row["sentence1"], row["sentence2"], label))
        else:
            out.append(Example(row["sentence"], None, label))
    return out


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank rows with their 1-based line numbers."""
    if not path.exists():
        raise UserError(f"missing task data file: {path}")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not valid UTF-8 ({e})") from e
    numbered = [(i, r) for i, r in enumerate(rows, start=1) if r]  # tolerate blank lines
    if not numbered:
        raise UserError(f"{path}: empty file")
    return numbered


def _label(path: Path, lineno: int, value: str) -> int:
    if value not in ("0", "1"):
        raise UserError(f"{path}: line {lineno}: label must be 0 or 1, got {value!r}")
    return int(value)


def _check_width(path: Path, lineno: int, row: list[str], n: int, what: str) -> None:
    if len(row) != n:
        raise UserError(f"{path}: line {lineno}: expected {n} tab-separated columns ({what}), got {len(row)}")


def read_local(task: str, path: str | Path) -> list[Example]:
    """Parse one local GLUE file of ``task`` (format documented in the module docstring)."""
    check_task(task)
    path = Path(path)
    rows = _read_rows(path)
    out = []
    if task == "mrpc":
        if [c.strip() for c in rows[0][1]] != MRPC_HEADER:
            raise UserError(f"{path}: wrong columns {rows[0][1]!r}; expected MRPC header {MRPC_HEADER}")
        for i, r in rows[1:]:
            _check_width(path, i, r, 5, "Quality, #1 ID, #2 ID, #1 String, #2 String")
            out.append(Example(r[3], r[4], _label(path, i, r[0])))
    elif task == "sst2":
        if [c.strip() for c in rows[0][1]] not in (SST2_HEADER, ["sentence", "label"]):
            raise UserError(f"{path}: wrong columns {rows[0][1]!r}; expected SST-2 header {SST2_HEADER}")
        for i, r in rows[1:]:
            _check_width(path, i, r, 2, "text, label")
            out.append(Example(r[0].strip(), None, _label(path, i, r[1])))
    else:  # cola: no header
        for i, r in rows:
            _check_width(path, i, r, 4, "source, label, original label, sentence")
            out.append(Example(r[3], None, _label(path, i, r[1])))
    if not out:
        raise UserError(f"{path}: no examples")
    return out
