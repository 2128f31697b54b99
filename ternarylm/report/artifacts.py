"""What each report notebook reads, as pandas frames (``Artifacts``: the readers). Paths, runs and
each notebook's input list come from ``ternarylm.layout`` (re-exported here for older imports).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ternarylm.io import load_config
from ternarylm.layout import (  # noqa: F401  (re-exported: the notebooks and rules import them here)
    FIGURE_FORMATS,
    NOTEBOOK_CONFIG,
    NOTEBOOK_FIGURES,
    NOTEBOOK_TABLES,
    NOTEBOOKS,
    SPARSITY_FIELDS,
    SPLITS,
    Layout,
    Plan,
)


def require(path: str | os.PathLike, what: str = "artifact") -> Path:
    """``path`` if it exists, else FileNotFoundError naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing {what}: {path}")
    return path


class Artifacts(Plan):
    """The artifacts of one resolved config (a ``Plan``) with their readers."""

    @classmethod
    def from_config_file(
        cls, config_path: str | os.PathLike, results_dir: str | os.PathLike | None = None
    ) -> Artifacts:
        cfg = load_config(require(config_path, "config"))
        return cls(results_dir if results_dir is not None else cfg["results_dir"], cfg)

    # readers: a missing file raises FileNotFoundError naming it, a malformed one ValueError
    def read_json(self, path: str | os.PathLike) -> dict[str, Any]:
        path = require(path)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e

    def read_csv(self, path: str | os.PathLike, columns: Sequence[str] = ()) -> pd.DataFrame:
        df = pd.read_csv(require(path))
        if df.empty:
            raise ValueError(f"{path}: no rows")
        lacking = [c for c in columns if c not in df.columns]
        if lacking:
            raise ValueError(f"{path}: missing column(s) {lacking}; has {list(df.columns)}")
        return df

    def eval_table(self, runs: Sequence[tuple[str, str, int]] | None = None) -> pd.DataFrame:
        """One row per run (default: the main runs): the evaluate JSON plus corpus/variant/seed."""
        rows = []
        for corpus, v, s in self.main_runs() if runs is None else runs:
            d = self.read_json(self.eval_json(corpus, v, s))
            rows.append({"corpus": corpus, "variant": v, "seed": s, **d})
        return pd.DataFrame(rows)

    def control_eval_table(self) -> pd.DataFrame:
        """eval_table of the fp32-noncausal control (empty frame when it is off)."""
        return self.eval_table(self.noncausal_runs())

    def tokenizer_vocab(self) -> int:
        """Entries of the tokenizer actually used (tokenizer.json), not the requested vocab_size."""
        tok = self.read_json(self.tokenizer_json())
        vocab = (tok.get("model") or {}).get("vocab")
        if not isinstance(vocab, dict):
            raise ValueError(f"{self.tokenizer_json()}: no model.vocab table")
        added = {t["id"] for t in tok.get("added_tokens") or []} - set(vocab.values())
        return len(vocab) + len(added)

    def metrics(self, corpus: str, variant: str, seed: int) -> pd.DataFrame:
        cols = ("step", "epoch", "train_loss", "val_loss")
        df = self.read_csv(self.metrics_csv(corpus, variant, seed), cols)
        df = df.apply(pd.to_numeric, errors="coerce")
        return df.assign(corpus=corpus, variant=variant, seed=seed)

    def n_train_docs(self, corpus: str) -> int | None:
        """Training documents actually prepared (``manifest.json``), None if it does not say."""
        path = self.manifest(corpus)
        if not os.path.exists(path):
            return None
        n = (self.read_json(path).get("splits") or {}).get("train", {}).get("n_docs")
        return int(n) if n is not None else None

    def token_counts(self, corpus: str) -> dict[str, int]:
        """Tokens per split (``n_tokens`` of the tokenize stage's ``tokens/{corpus}/{split}.json``)."""
        counts = {}
        for split in SPLITS:
            path = self.tokens(corpus, split, "json")
            n = self.read_json(path).get("n_tokens")
            if n is None:
                raise ValueError(f"{path}: no n_tokens (rerun tokenize)")
            counts[split] = int(n)
        return counts

    def finetune_metrics(self, task: str, variant: str, seed: int) -> dict[str, Any]:
        return self.read_json(self.finetune_file(task, variant, seed, "metrics.json"))

    def finetune_curve(self, task: str, variant: str, seed: int) -> pd.DataFrame:
        df = self.read_csv(self.finetune_file(task, variant, seed, "curve.csv"), ("epoch",))
        return df.assign(task=task, variant=variant, seed=seed)

    def bench_environment(self, device: str) -> dict[str, Any]:
        return self.read_json(self.bench_env(device))

    def sparsity(self, variant: str, seed: int) -> pd.DataFrame:
        cols = [c for c in SPARSITY_FIELDS if c not in ("variant", "alpha")]
        df = self.read_csv(self.sparsity_csv(variant, seed), cols)
        df["quantized"] = df["quantized"].astype(str).str.lower().isin(["true", "1"])
        return df.assign(variant=variant, seed=seed)
