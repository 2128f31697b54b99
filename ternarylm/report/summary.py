"""The claims page's opening lines, generated from the claims table: what this run can and cannot
say about the paper, and what its measurements suggest (the "at this scale" column).

Reads only the table's ``claim``, ``verdict`` and (when present) ``at_scale`` columns plus the scale
reasons of :func:`ternarylm.report.claims.pretrain_reasons`, so the summary cannot say anything the
table does not. ``at_scale`` (holds / fails / —) is what a rule gives on our numbers with
comparability set aside; a table without it (older claims.csv) gets a summary without that line.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ternarylm.report.paper import NOT_COMPARABLE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, VERDICTS

HOLDS, FAILS = "holds", "fails"
MAX_NAMED = 4  # claims named per line; the rest are counted ("and 3 more")


def short_claim(claim: str) -> str:
    """The claim's subject, without its parenthesised method or the ": how it is computed" tail."""
    head = claim.split(" (")[0].split(": ")[0].split(" — ")[0]
    return head.strip().rstrip(",")


def _names(claims: Sequence[str]) -> str:
    names = list(dict.fromkeys(short_claim(c) for c in claims))
    shown = "; ".join(names[:MAX_NAMED])
    return shown + (f"; and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")


def _counts(table: pd.DataFrame) -> str:
    counts = table["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts.get(v, 0))


def _scale_line(table: pd.DataFrame, scale_reasons: Sequence[str]) -> str:
    judged = table[table["verdict"].isin([REPRODUCED, NOT_REPRODUCED])]
    if not scale_reasons:
        return f"This run has the paper's setup: {len(judged)} claims are judged against the paper."
    # each reason's subject ("epochs=2 (paper 15)" -> "epochs"); the page's scale line has the values
    labels = dict.fromkeys(r.split(" (")[0].split(":")[0].split("=")[0] for r in scale_reasons)
    first = "differs in " + ", ".join(labels) + ": see the scale line below"
    if judged.empty:
        return (
            f"**What it can say:** this run is not the paper's setup ({first}), so it can neither "
            "confirm nor refute a paper number: every measured claim is *not comparable*. It shows that "
            "every stage runs and what each rule gives at this scale."
        )
    return (
        f"**What it can say:** {len(judged)} claims do not depend on the scale and are judged; the "
        f"others are *not comparable* ({first})."
    )


def _at_scale_lines(table: pd.DataFrame) -> list[str]:
    if "at_scale" not in table.columns:
        return ["*This claims table has no “at this scale” column (its claims engine predates it).*"]
    rows = table[table["verdict"] == NOT_COMPARABLE]
    holds = rows[rows["at_scale"] == HOLDS]["claim"].tolist()
    fails = rows[rows["at_scale"] == FAILS]["claim"].tolist()
    out = []
    if holds:
        out.append(f"**At this scale the rule holds** ({len(holds)}): {_names(holds)}.")
    if fails:
        out.append(f"**At this scale the rule fails** ({len(fails)}): {_names(fails)}.")
    if not holds and not fails and not rows.empty:
        out.append("No not-comparable rule could be evaluated on this run's numbers.")
    return out


def summary(table: pd.DataFrame, scale_reasons: Sequence[str], preset: str) -> str:
    """3–6 Markdown lines for the top of the claims page."""
    lines = [f"**This run** (preset *{preset}*): {len(table)} claims — {_counts(table)}."]
    lines.append(_scale_line(table, scale_reasons))
    judged = table[table["verdict"].isin([REPRODUCED, NOT_REPRODUCED])]
    for verdict in (REPRODUCED, NOT_REPRODUCED):
        got = judged[judged["verdict"] == verdict]["claim"].tolist()
        if got:
            lines.append(f"**{verdict.capitalize()}** ({len(got)}): {_names(got)}.")
    lines += _at_scale_lines(table)
    not_run = table[table["verdict"] == NOT_RUN]["claim"].tolist()
    if not_run:
        lines.append(f"**Not run here** ({len(not_run)}): {_names(not_run)} — the table says why.")
    return "\n\n".join(lines[:6])
