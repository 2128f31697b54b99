"""The claims engine: each claim of the paper, ours, and a verdict (reproduced / not reproduced /
not comparable / not run) with ``at_scale`` (holds / fails / —: the rule on our numbers, setup
aside) and ``evidence`` (the files and commits it was computed from).

Every verdict is computed from the records of the artifacts it judges (records.py); the config
only says what was asked. Modules by area: setup (comparability), lm (perplexity, ratios,
controls, data, convergence), glue (fine-tuning), efficiency (bench), sparsity; judge holds the
rules, row the table's columns. docs/claims.md states every rule as applied here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ternarylm.report.artifacts import Artifacts
from ternarylm.report.claims.efficiency import claims_efficiency
from ternarylm.report.claims.glue import claims_finetuning
from ternarylm.report.claims.judge import (
    FAILS,
    HOLDS,
    UNKNOWN,
    Seeds,
    Verdict,
    judge_above,
    judge_all,
    judge_close,
    judge_factor,
    judge_range,
    seed_margin,
)
from ternarylm.report.claims.lm import claims_convergence, claims_pretraining
from ternarylm.report.claims.records import Records
from ternarylm.report.claims.row import CLAIM_FIELDS
from ternarylm.report.claims.setup import pretrain_context
from ternarylm.report.claims.sparsity import claims_sparsity
from ternarylm.report.paper import UPSTREAM
from ternarylm.report.tables import Stat, write_table

__all__ = [
    "CLAIM_FIELDS",
    "FAILS",
    "HOLDS",
    "UNKNOWN",
    "Seeds",
    "Stat",
    "Verdict",
    "claims_table",
    "judge_above",
    "judge_all",
    "judge_close",
    "judge_factor",
    "judge_range",
    "pretrain_reasons",
    "scale_note",
    "seed_margin",
    "upstream_table",
    "write_claims",
]


def pretrain_reasons(art: Artifacts, corpus: str | None = None) -> list[str]:
    """How the pretraining runs differ from the paper's setup, as their records say (empty: same)."""
    return pretrain_context(Records(art), ("ternary", "fp32"), corpus)[0]


def scale_note(reasons: Sequence[str]) -> str:
    """The line every notebook opens with: is this run the paper's setup, and if not, how not."""
    if not reasons:
        return "**Scale of this run vs the paper:** same setup as the paper."
    return "**Scale of this run vs the paper:** not comparable — " + "; ".join(reasons) + "."


def upstream_table() -> pd.DataFrame:
    """What the paper says | what the authors' own artifacts print | source | what it means."""
    cols = {"claim": "claim", "paper": "paper says", "upstream": "authors' artifact prints"}
    cols |= {"source": "source", "meaning": "what it means for the claim"}
    return pd.DataFrame(UPSTREAM).reindex(columns=list(cols)).rename(columns=cols)


def claims_table(art: Artifacts) -> pd.DataFrame:
    rec = Records(art)
    rows = (
        claims_pretraining(rec)
        + claims_finetuning(rec)
        + claims_efficiency(rec)
        + claims_sparsity(rec)
        + claims_convergence(rec)
    )
    return pd.DataFrame(rows, columns=CLAIM_FIELDS)


def write_claims(claims: pd.DataFrame, path: str | Path) -> Path:
    """Write the claims table (``CLAIM_FIELDS``) atomically."""
    write_table(claims[CLAIM_FIELDS], Path(path).parent, Path(path).stem)
    return Path(path)
