"""One row of the claims table: the claim, the paper's value, ours, the verdict and its evidence."""

from __future__ import annotations

import math
from typing import Any

from ternarylm.report.claims.judge import Verdict
from ternarylm.report.claims.records import Trail
from ternarylm.report.paper import NOT_RUN
from ternarylm.report.tables import Stat

CLAIM_FIELDS = [
    "claim",
    "paper_value",
    "ours",
    "n_seeds",
    "verdict",
    "at_scale",
    "reason",
    "evidence",
    "source",
    "ours_mean",
    "ours_std",
]


def row(
    claim: str,
    paper_value: str,
    ours: Stat | None,
    v: Verdict,
    source: str,
    trail: Trail | None = None,
    digits: int = 2,
    shown: str | None = None,
) -> dict[str, Any]:
    ours = ours or Stat(math.nan, math.nan, 0)
    if shown is None:
        shown = ours.fmt(digits) if ours.n or v.verdict == NOT_RUN else "not computed"
    return {
        "claim": claim,
        "paper_value": paper_value,
        "ours": shown,
        "n_seeds": ours.n,
        "verdict": v.verdict,
        "at_scale": v.at_scale,
        "reason": v.reason,
        "evidence": trail.cell() if trail is not None else "",
        "source": source,
        "ours_mean": ours.mean,
        "ours_std": ours.std,
    }
