"""What the artifacts themselves record, read once per claims table, and the evidence trail.

Every verdict is computed from the records of the artifacts it judges: the model folders'
``config.json`` (architecture, quantization, training settings, seed), the evaluation JSONs, the
training logs (``metrics.csv``), fine-tune ``metrics.json``, bench CSVs, sparsity CSVs, data
manifests and token metas. The run config only says what was *asked*; where the records say
otherwise, that is itself a reason. Each JSON's ``provenance`` (commit, dirty) is read too.

A :class:`Trail` collects the files one claim row was computed from: they become its ``evidence``
cell (paths relative to the results folder, then the commit(s)) and its provenance reasons.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ternarylm.report.artifacts import Artifacts

SHORT = 7  # characters of a commit sha shown in reasons and the evidence cell


@dataclass
class Trail:
    """Files behind one claim row, in the order read, and the provenance each JSON records."""

    root: str
    files: list[str] = field(default_factory=list)
    prov: dict[str, tuple[str, bool | None] | None] = field(default_factory=dict)

    def add(self, path: str, prov: tuple[str, bool | None] | None = None, traced: bool = True) -> None:
        """``traced``: the file has a provenance record of its own (``prov`` None: it lacks one)."""
        rel = os.path.relpath(path, self.root)
        if rel not in self.files:
            self.files.append(rel)
        if traced:
            self.prov[rel] = prov

    def extend(self, other: Trail) -> Trail:
        for f in other.files:
            if f not in self.files:
                self.files.append(f)
        self.prov.update(other.prov)
        return self

    def commits(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for f, p in self.prov.items():
            if p is not None:
                out.setdefault(p[0][:SHORT], []).append(f)
        return out

    def reasons(self) -> list[str]:
        """One commit and a clean tree across the row's artifacts, or why not (files named)."""
        out = []
        bare = [f for f, p in self.prov.items() if p is None]
        if bare:
            out.append(f"no provenance record in {_some(bare)}")
        commits = self.commits()
        if len(commits) > 1:
            each = " vs ".join(f"{c} ({_some(fs)})" for c, fs in commits.items())
            out.append(f"artifacts from {len(commits)} commits: {each}")
        dirty = [f for f, p in self.prov.items() if p is not None and p[1]]
        if dirty:
            out.append(f"dirty tree: {_some(dirty)}")
        return out

    def cell(self) -> str:
        """The evidence cell: files, then the commit(s) they record (+ dirty)."""
        if not self.files:
            return ""
        commits = self.commits()
        dirty = any(p is not None and p[1] for p in self.prov.values())
        tail = ", ".join(commits) + (" (dirty)" if dirty else "") if commits else "no commit recorded"
        return "; ".join(self.files) + f" @ {tail}"


def _some(files: list[str], k: int = 3) -> str:
    more = f" and {len(files) - k} more" if len(files) > k else ""
    return ", ".join(files[:k]) + more


def provenance_of(record: dict[str, Any] | None) -> tuple[str, bool | None] | None:
    p = (record or {}).get("provenance")
    if not isinstance(p, dict) or "git_commit" not in p:
        return None
    return str(p["git_commit"]), p.get("git_dirty")


class Records:
    """Reads (once) and caches the records of one results folder; ``None`` means absent."""

    def __init__(self, art: Artifacts) -> None:
        self.art = art
        self._json: dict[str, dict[str, Any] | None] = {}

    def trail(self) -> Trail:
        return Trail(self.art.root)

    def json(self, path: str, trail: Trail | None = None) -> dict[str, Any] | None:
        if path not in self._json:
            try:
                self._json[path] = json.loads(Path(path).read_text(encoding="utf-8"))
            except FileNotFoundError:
                self._json[path] = None
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from e
        rec = self._json[path]
        if trail is not None and rec is not None:
            trail.add(path, provenance_of(rec))
        return rec

    def csv(self, path: str, trail: Trail | None = None) -> pd.DataFrame | None:
        if not os.path.exists(path):
            return None
        if trail is not None:
            trail.add(path, traced=False)  # CSVs carry no provenance: their stage's JSON does
        return pd.read_csv(path)

    # pretraining runs
    def model(self, corpus: str, variant: str, seed: int, trail: Trail | None = None) -> dict | None:
        return self.json(self.art.model_file(corpus, variant, seed, "config.json"), trail)

    def eval(self, corpus: str, variant: str, seed: int, trail: Trail | None = None) -> dict | None:
        return self.json(self.art.eval_json(corpus, variant, seed), trail)

    def log(self, corpus: str, variant: str, seed: int, trail: Trail | None = None) -> pd.DataFrame | None:
        """The run's training log (metrics.csv), numeric."""
        df = self.csv(self.art.metrics_csv(corpus, variant, seed), trail)
        return None if df is None else df.apply(pd.to_numeric, errors="coerce")

    def manifest(self, corpus: str, trail: Trail | None = None) -> dict | None:
        return self.json(self.art.manifest(corpus), trail)

    def token_meta(self, corpus: str, split: str, trail: Trail | None = None) -> dict | None:
        return self.json(self.art.tokens(corpus, split, "json"), trail)

    def finetune(self, task: str, backbone: str, seed: int, trail: Trail | None = None) -> dict | None:
        return self.json(self.art.finetune_file(task, backbone, seed, "metrics.json"), trail)

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.art.root)
