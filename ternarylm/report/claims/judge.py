"""Verdicts and the rules that give them.

A verdict has two faces: ``verdict`` (reproduced / not reproduced / not comparable / not run: may
this run speak for the paper's claim at all, and if so does the claim hold) and ``at_scale``
(holds / fails / —: what the rule gives on our numbers with comparability set aside). A run that
differs from the paper's setup is "not comparable" whatever its numbers; ``at_scale`` still says
whether the rule held, so a reader can see what a small run suggests without taking it for a
verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ternarylm.report.paper import (
    MIN_MARGIN,
    NOT_COMPARABLE,
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    SEED_K,
)
from ternarylm.report.tables import Stat

HOLDS, FAILS, UNKNOWN = "holds", "fails", "—"
ONE_SEED = "one seed, no noise estimate"


def num(x: float, digits: int = 3) -> str:
    """A number for a reason: never "nan" (a missing value is said in words)."""
    if x is None or not math.isfinite(float(x)):
        return "not measured" if x is None or math.isnan(float(x)) else ("+inf" if x > 0 else "-inf")
    return f"{x:.{digits}g}"


def signed(x: float, digits: int = 3) -> str:
    return num(x, digits) if not math.isfinite(x) else f"{x:+.{digits}g}"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str
    at_scale: str = UNKNOWN

    def plus(self, detail: str) -> Verdict:
        return Verdict(self.verdict, self.reason + detail, self.at_scale)


def not_run(why: str) -> Verdict:
    return Verdict(NOT_RUN, why)


def _judge(ok: bool, detail: str, reasons: Sequence[str]) -> Verdict:
    at_scale = HOLDS if ok else FAILS
    if reasons:
        return Verdict(NOT_COMPARABLE, "; ".join(reasons) + f" — {detail}", at_scale)
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED, detail, at_scale)


def _no_noise(detail: str, reasons: Sequence[str]) -> Verdict:
    return Verdict(NOT_COMPARABLE, "; ".join([*reasons, ONE_SEED]) + f" — {detail}")


# Every rule below is two-sided, or (judge_above) an inequality with a strictly positive margin;
# tests/test_claims.py::test_every_rule_is_two_sided_or_has_a_margin reads this package to check.


def judge_close(
    ours: Stat,
    paper: float,
    *,
    rel: float | None = None,
    abs_: float | None = None,
    what: str = "paper",
    reasons: Sequence[str] = (),
) -> Verdict:
    """Reproduced when |ours.mean - paper| <= tolerance (relative to the paper value, or absolute)."""
    if ours.n == 0:
        return not_run("no result")
    tol = rel * abs(paper) if rel is not None else float(abs_ or 0.0)
    diff = ours.mean - paper
    return _judge(abs(diff) <= tol, f"ours - {what} = {signed(diff)} (tolerance ±{num(tol)})", reasons)


def judge_factor(ours: Stat, paper: float, *, factor: float, reasons: Sequence[str] = ()) -> Verdict:
    """Reproduced when paper / factor <= ours.mean <= paper * factor (two-sided in log space)."""
    if ours.n == 0:
        return not_run("no result")
    ok = ours.mean > 0 and abs(math.log(ours.mean / paper)) <= math.log(factor)
    return _judge(
        ok, f"ours / paper = {num(ours.mean / paper)} (allowed x1/{factor:g} to x{factor:g})", reasons
    )


def judge_above(
    ours: Stat, ref: float, *, margin: float | None, what: str = "reference", reasons: Sequence[str] = ()
) -> Verdict:
    """Reproduced when ours.mean - ref > margin, margin > 0: an inequality claim beyond noise.

    ``margin=None`` (seed_margin found no spread to measure): "not comparable", one seed.
    """
    if ours.n == 0:
        return not_run("no result")
    diff = ours.mean - ref
    if margin is None:
        return _no_noise(f"ours - {what} = {signed(diff)}", reasons)
    if not margin > 0:
        raise ValueError(f"judge_above needs a positive margin, got {margin}")
    rel = ">" if diff > margin else "<="
    return _judge(diff > margin, f"ours - {what} = {signed(diff)} {rel} margin {num(margin)}", reasons)


def judge_range(ours: Stat, lo: float, hi: float, *, tol: float, reasons: Sequence[str] = ()) -> Verdict:
    """Reproduced when lo - tol <= ours.mean <= hi + tol."""
    if ours.n == 0:
        return not_run("no result")
    ok = lo - tol <= ours.mean <= hi + tol
    return _judge(ok, f"ours {num(ours.mean)} vs paper range {lo}-{hi} (± {tol:g})", reasons)


def judge_all(parts: Sequence[Verdict]) -> Verdict:
    """Several conditions of one claim, the first being the primary value.

    Primary not run -> not run. Otherwise a measured failure is "not reproduced" even where a
    secondary value is missing; then not comparable; then a missing secondary value (not run);
    reproduced only if every part is. Every part's detail is kept, the shared "reasons — " prefix
    of not-comparable parts once, up front.
    """
    prefix, details = "", []
    for p in parts:
        head, sep, tail = p.reason.partition(" — ")
        if p.verdict == NOT_COMPARABLE and sep and head == (prefix or head):
            prefix = head
            details.append(tail)
        else:
            details.append(p.reason)
    reason = (f"{prefix} — " if prefix else "") + "; ".join(details)
    scales = {p.at_scale for p in parts}
    at_scale = FAILS if FAILS in scales else HOLDS if scales == {HOLDS} else UNKNOWN
    if parts[0].verdict == NOT_RUN:
        return Verdict(NOT_RUN, reason, UNKNOWN)
    for verdict in (NOT_REPRODUCED, NOT_COMPARABLE, NOT_RUN):
        if any(p.verdict == verdict for p in parts):
            return Verdict(verdict, reason, at_scale)
    return Verdict(REPRODUCED, reason, at_scale)


def seed_margin(*stats: Stat) -> float | None:
    """The margin an inequality needs over seed noise: SEED_K pooled std, at least MIN_MARGIN.

    Pooled over the groups compared that have a measured spread (at least 2 finite seeds; a
    deterministic baseline passes no Stat). None when no group has one: without a spread there is
    no noise estimate, and a floor alone would pass a single lucky seed (judge_above then says
    "not comparable: one seed").
    """
    var = [s.std**2 for s in stats if s.n > 1 and math.isfinite(s.std)]
    if not var:
        return None
    return max(SEED_K * math.sqrt(sum(var) / len(var)), MIN_MARGIN)


@dataclass
class Seeds:
    """One quantity per seed, as read from the artifacts: finite values, diverged (non-finite)
    values and missing ones (seed -> what is missing). None of them is ever dropped silently."""

    values: dict[int, float] = field(default_factory=dict)
    diverged: dict[int, float] = field(default_factory=dict)
    missing: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, values: Mapping[int, float | None], missing: Mapping[int, str] | None = None) -> Seeds:
        out = cls(missing=dict(missing or {}))
        for s, v in values.items():
            if v is None:
                out.missing.setdefault(s, "no value")
            elif math.isfinite(float(v)):
                out.values[s] = float(v)
            else:
                out.diverged[s] = float(v)
        return out

    @property
    def stat(self) -> Stat:
        return Stat.of(self.values.values())

    def problems(self) -> list[str]:
        """Why the seeds cannot all speak: missing ones named (diverged ones are findings)."""
        return [f"seed {s} missing ({why})" for s, why in sorted(self.missing.items())]

    def divergence(self) -> str:
        return ", ".join(f"seed {s} diverged ({num(v)})" for s, v in sorted(self.diverged.items()))


def judge_seeds(seeds: Seeds, rule: Callable[[Stat, list[str]], Verdict], reasons: Sequence[str]) -> Verdict:
    """``rule`` on the seeds' mean; a missing seed makes it not comparable (named), none: not run;
    a diverged seed is a measured failure of the claim (its value shown)."""
    if not seeds.values and not seeds.diverged:
        return not_run("; ".join(seeds.problems()) or "no result")
    r = [*reasons, *seeds.problems()]
    if seeds.diverged:
        return _judge(False, seeds.divergence() + " (a diverged run is a failure, not dropped)", r)
    return rule(seeds.stat, r)


def judge_each_seed(
    seeds: Seeds,
    rule: Callable[[Stat, list[str]], Verdict],
    rule_text: str,
    reasons: Sequence[str],
    digits: int = 3,
) -> Verdict:
    """A claim worded "per seed": ``rule`` on every seed alone; reproduced only if every seed holds."""
    if not seeds.values and not seeds.diverged:
        return not_run("; ".join(seeds.problems()) or "no result")
    r = [*reasons, *seeds.problems()]
    parts = [rule(Stat(v, math.nan, 1), []) for v in seeds.values.values()]
    held = [s for s, p in zip(seeds.values, parts, strict=True) if p.at_scale == HOLDS]
    failed = [s for s in seeds.values if s not in held] + sorted(seeds.diverged)
    shown = ", ".join(f"seed {s} {v:+.{digits}f}" for s, v in seeds.values.items())
    detail = f"per seed: {shown}" + (f"; {seeds.divergence()}" if seeds.diverged else "")
    detail += f" (each must hold: {rule_text}); " + (
        f"fails for seed {', '.join(map(str, failed))}" if failed else "holds for every seed"
    )
    return _judge(not failed, detail, r)
