"""How the notebooks show tables to a reader: chosen columns with units, rounded numbers, "—" for
a missing value, and long repeated texts (reasons, sources) once as numbered footnotes.
The CSV files under results/tables keep every column at full precision; this is display only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

MISSING = "—"


def _cell(v: object, digits: int) -> str:
    # "None"/"nan": text tables (e.g. T1) built with astype(str)
    if v is None or v is pd.NA or (isinstance(v, float) and not math.isfinite(v)) or v in ("", "None", "nan"):
        return MISSING
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def readable(
    df: pd.DataFrame, columns: Mapping[str, str], digits: int | Mapping[str, int] = 2
) -> pd.DataFrame:
    """``columns`` (name -> header with unit) of ``df`` that exist, as text: rounded, no NaN."""
    keep = {c: h for c, h in columns.items() if c in df.columns}
    out = pd.DataFrame(index=df.index)
    for c, header in keep.items():
        d = digits.get(c, 2) if isinstance(digits, Mapping) else digits
        out[header] = [_cell(v, d) for v in df[c].tolist()]
    return out.reset_index(drop=True)


def footnotes(
    values: pd.Series, sep: str = " — ", part_sep: str = "; ", min_len: int = 60
) -> tuple[pd.Series, list[str]]:
    """Move long texts to numbered notes, each distinct text once. A value "A; B — detail" (the
    shape of a verdict's reason: why not comparable, then the comparison) shows as "[1, 2] detail";
    any other value of at least ``min_len`` characters as "[n]"."""
    notes: list[str] = []

    def ref(text: str) -> int:
        if text not in notes:
            notes.append(text)
        return notes.index(text) + 1

    out = []
    for v in values.tolist():
        s = _cell(v, 2)
        head, found, tail = s.partition(sep)
        if s != MISSING and found and len(head) >= min_len:
            out.append(f"[{', '.join(str(ref(p)) for p in head.split(part_sep))}] {tail}")
        elif s != MISSING and len(s) >= min_len:
            out.append(f"[{ref(s)}]")
        else:
            out.append(s)
    return pd.Series(out, index=values.index, name=values.name), notes


def notes_markdown(notes: list[str], title: str = "Notes") -> str:
    if not notes:
        return ""
    return f"**{title}**\n\n" + "\n".join(f"{i}. {n}" for i, n in enumerate(notes, 1))


def spread(
    df: pd.DataFrame, col: str = "ms_per_token_iqr", runs: str = "repeats", digits: int = 3
) -> list[str]:
    """``col`` (a spread over timed runs) as text, "— (1 run)" where a single run was timed: one
    timing has no spread, and 0.000 would read as a perfectly precise measurement."""
    n = df[runs] if runs in df.columns else pd.Series([None] * len(df), index=df.index)
    return [
        f"{MISSING} (1 run)" if k == 1 else _cell(v, digits)
        for v, k in zip(df[col].tolist(), pd.to_numeric(n, errors="coerce").tolist())
    ]


def show(df: pd.DataFrame):  # -> pandas Styler (jinja2 is a dependency of nbconvert)
    """``df`` without its integer index, text left-aligned, for display in a notebook."""
    # headers too: nbconvert's stylesheet right-aligns <th>, which then sits off its left-aligned column
    left = [{"selector": "th", "props": [("text-align", "left")]}]
    return df.style.hide(axis="index").set_properties(**{"text-align": "left"}).set_table_styles(left)
