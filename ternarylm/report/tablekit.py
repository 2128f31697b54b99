"""What every table shares: mean ± sample std over seeds (``Stat``, ``aggregate``) and the CSV writer."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ternarylm.io import write_csv
from ternarylm.report.paper import NOT_RUN


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (ddof=1; NaN for one value) and count of finite values."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not xs:
            return cls(math.nan, math.nan, 0)
        mean = sum(xs) / len(xs)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else math.nan
        return cls(mean, std, len(xs))

    def fmt(self, digits: int = 2, unit: str = "") -> str:
        if self.n == 0:
            return NOT_RUN
        if self.n == 1:
            return f"{self.mean:.{digits}f}{unit} (n=1)"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}{unit}"

    def scaled(self, k: float) -> Stat:
        return Stat(self.mean * k, self.std * abs(k), self.n)


def aggregate(df: pd.DataFrame, by: str | Sequence[str], cols: Sequence[str]) -> pd.DataFrame:
    """Per group of ``by``: ``{col}_mean``, ``{col}_std`` (ddof=1) and ``n`` (rows in the group)."""
    by = [by] if isinstance(by, str) else list(by)
    out = []
    for key, g in df.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        for c in cols:
            s = Stat.of(g[c].tolist())
            row[f"{c}_mean"], row[f"{c}_std"] = s.mean, s.std
        row["n"] = len(g)
        out.append(row)
    return pd.DataFrame(out)


def write_table(df: pd.DataFrame, out_dir: str | Path, name: str) -> Path:
    """Write ``df`` to ``out_dir/name.csv`` atomically (floats rounded to 6 significant digits)."""
    path = Path(out_dir) / f"{name}.csv"
    rows = [
        {k: (float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else v) for k, v in r.items()}
        for r in df.to_dict("records")
    ]
    rows = [
        {k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows
    ]
    write_csv(path, rows, list(df.columns))
    return path
