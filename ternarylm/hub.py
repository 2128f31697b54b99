"""Every HF hub read of the pipeline: which repos, at which revision, from the hub or a local mirror.

The paper preset (``data_source: hf``) reads these repos; their ids and revisions live only here:

  roneneldan/TinyStories      parquet under data/ (splits train, validation; column text)
  euclaise/writingprompts     parquet (train, validation, test; columns prompt, story)
  karpathy/tiny_shakespeare   revision refs/convert/parquet: the hub's parquet conversion
                              (default/{train,validation,test}/0000.parquet, one row of text each).
                              Its main branch is a loading script, which datasets >= 4 refuses
                              ("Dataset scripts are no longer supported").
  nyu-mll/glue                configs mrpc, sst2, cola (parquet per config, README configs)
  bert-base-uncased           the tokenizer.json of the paper's vocabulary (a model repo)

``hf_mirror`` (config) names a folder laid out like the hub: ``<mirror>/<repo id>/`` holds the files
the repo has at the revision above (``python -m ternarylm.hubfixtures DIR`` writes a tiny one). With a
mirror nothing touches the network (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are set). Every failure is
one ``UserError`` line naming the repo and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ternarylm.io import UserError

# corpus or task -> (repo, config name, revision, {our split: hub split}, required columns)
CORPUS_REPOS: dict[str, tuple[str, str | None, str | None, dict[str, str], tuple[str, ...]]] = {
    "tinystories": ("roneneldan/TinyStories", None, None, {"train": "train", "val": "validation"}, ("text",)),
    "writingprompts": (
        "euclaise/writingprompts",
        None,
        None,
        {"train": "train", "val": "validation"},
        ("prompt", "story"),
    ),
    # all three splits: the script's 90/5/5 cut of one text, glued back before our val_fraction cut
    "shakespeare": (
        "karpathy/tiny_shakespeare",
        None,
        "refs/convert/parquet",
        {"train": "train", "val": "validation", "test": "test"},
        ("text",),
    ),
}
GLUE_REPO = "nyu-mll/glue"
GLUE_COLUMNS = {
    "mrpc": ("sentence1", "sentence2", "label"),
    "sst2": ("sentence", "label"),
    "cola": ("sentence", "label"),
}
GLUE_SPLITS = {"train": "train", "dev": "validation"}
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
SCRIPT_ERROR = "Dataset scripts are no longer supported"


def mirror_dir(config: dict[str, Any]) -> Path | None:
    m = config.get("hf_mirror")
    return Path(m) if m else None


def source_of(repo: str, config: dict[str, Any]) -> str:
    """What ``load_dataset`` gets for ``repo``: the hub id, or its folder in ``hf_mirror``."""
    mirror = mirror_dir(config)
    if mirror is None:
        return repo
    path = mirror / repo
    if not path.is_dir():
        raise UserError(
            f"hf_mirror {mirror}: no copy of {repo} (expected the folder {path}); "
            "write a test mirror with `python -m ternarylm.hubfixtures DIR` or set hf_mirror: null"
        )
    for var in OFFLINE_VARS:  # read by datasets/huggingface_hub at import: set before importing them
        os.environ[var] = "1"
    return str(path)


def _where(repo: str, name: str | None, revision: str | None) -> str:
    return repo + (f" (config {name})" if name else "") + (f" at revision {revision}" if revision else "")


def hub_error(repo: str, name: str | None, revision: str | None, e: Exception) -> UserError:
    """One line for a failed hub read: what went wrong with which repo, and what to do."""
    where, msg = _where(repo, name, revision), str(e).splitlines()[0] if str(e) else type(e).__name__
    if SCRIPT_ERROR in str(e):
        return UserError(
            f"{where}: only a loading script there, which datasets no longer runs ({msg}); read its "
            "parquet conversion (revision refs/convert/parquet; in hf_mirror, a copy of that revision) "
            "or use data_source: local"
        )
    kind = type(e).__name__
    if isinstance(e, ConnectionError) or any(w in kind for w in ("Connect", "Network", "Timeout", "Offline")):
        return UserError(
            f"{where}: the HF hub cannot be reached ({type(e).__name__}: {msg}); connect, or set "
            "hf_mirror to a local copy, or data_source: local"
        )
    if isinstance(e, (FileNotFoundError, ValueError)) or "NotFound" in kind or "not found" in msg.lower():
        return UserError(
            f"{where}: not found or without data files ({type(e).__name__}: {msg}); check the id, "
            "the revision and hf_mirror"
        )
    return UserError(
        f"{where}: cannot load ({type(e).__name__}: {msg}); check the repo, or data_source: local"
    )


def load_split(repo: str, name: str | None, revision: str | None, split: str, config: dict[str, Any]):
    """``datasets.load_dataset(...)`` of one split (slices like ``train[:100]`` allowed), after
    :func:`resolve` has checked that the split exists; every failure is one UserError line."""
    resolve(repo, name, revision, [split.split("[")[0]], config)
    src = source_of(repo, config)
    try:
        import datasets

        return datasets.load_dataset(src, name, split=split, revision=revision if src == repo else None)
    except Exception as e:  # network, cache, a layout the builder accepted but cannot read
        raise hub_error(repo, name, revision, e) from e


def check_columns(ds: Any, repo: str, split: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise UserError(f"{repo} {split}: missing column(s) {missing} (has {ds.column_names})")


def _hub_files(repo: str, revision: str | None, kind: str = "dataset") -> list[str]:
    """The repo's file names at ``revision``: one API call (no retries, 10 s timeout), so a missing
    id, revision or network fails in seconds (datasets' own lookups retry for ~30 s each)."""
    from huggingface_hub import HfApi

    api = HfApi()
    info = (api.dataset_info if kind == "dataset" else api.model_info)(repo, revision=revision, timeout=10)
    return [s.rfilename for s in info.siblings or []]


def locate(
    repo: str, revision: str | None, config: dict[str, Any], kind: str = "dataset"
) -> list[str] | None:
    """Does ``repo`` exist (at ``revision``), with data rather than only a loading script? Cheap:
    the mirror folder, or one hub API call; ``datasets`` is not imported. The hub's file list."""
    if mirror_dir(config) is not None:
        source_of(repo, config)
        return None
    try:
        files = _hub_files(repo, revision, kind)
        data = [f for f in files if f.endswith((".parquet", ".arrow", ".json", ".jsonl", ".csv", ".txt"))]
        scripts = [f for f in files if f.endswith(".py")]
        if kind == "dataset" and scripts and not data:
            raise RuntimeError(f"{SCRIPT_ERROR}, but found {scripts[0]}")
    except Exception as e:  # network, missing repo or revision, script-only repo: all user-fixable
        raise hub_error(repo, None, revision, e) from e
    return files


def resolve(repo: str, name: str | None, revision: str | None, splits: list[str], config: dict[str, Any]):
    """Preflight: resolve ``repo`` (data files per split, no download) and return its split names."""
    locate(repo, revision, config)
    src = source_of(repo, config)
    try:
        import datasets

        builder = datasets.load_dataset_builder(src, name, revision=revision if src == repo else None)
    except Exception as e:  # a layout datasets cannot read, a script-only mirror copy
        raise hub_error(repo, name, revision, e) from e
    have = sorted(map(str, builder.config.data_files or {}))
    missing = [s for s in splits if s not in have]
    if missing:
        raise UserError(f"{_where(repo, name, revision)}: no split(s) {missing} (has: {have})")
    return have
