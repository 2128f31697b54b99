"""GLUE claims (MRPC, SST-2, CoLA), read from each fine-tune's metrics.json: the dev metric, the
majority class it records, the backbone it names, the examples and settings it used."""

from __future__ import annotations

from typing import Any

from ternarylm.report.claims.judge import (
    Seeds,
    judge_above,
    judge_all,
    judge_close,
    judge_seeds,
    not_run,
    seed_margin,
)
from ternarylm.report.claims.records import Records, Trail
from ternarylm.report.claims.row import row
from ternarylm.report.claims.setup import dedup, pretrain_context
from ternarylm.report.formats import SCRATCH
from ternarylm.report.paper import (
    DISTILBERT_MRPC,
    METRIC_ABS,
    METRIC_NAMES,
    PAPER,
    TASK_METRIC,
    TASK_NAMES,
    TASK_PAPER_KEY,
)
from ternarylm.report.tables import Stat

SETTINGS_FREE = {"device", "threads", "compile", "precision", "eval_batch_size"}


class Tuned:
    """Every fine-tune of one task: per backbone, the metric by seed (and what is missing)."""

    def __init__(self, rec: Records, task: str, trail: Trail) -> None:
        self.rec, self.task, self.trail = rec, task, trail
        self.metrics = {
            (b, s): rec.finetune(task, b, s, trail) for b in rec.art.backbones for s in rec.art.seeds
        }

    def where(self, b: str, s: int) -> str:
        return self.rec.rel(self.rec.art.finetune_file(self.task, b, s, "metrics.json"))

    def seeds(self, backbone: str, key: str, split: str = "dev") -> Seeds:
        values, missing, seen = {}, {}, {}
        for s in self.rec.art.seeds:
            m = self.metrics[(backbone, s)]
            if m is None:
                missing[s] = f"{self.where(backbone, s)} absent"
                continue
            got = m.get(split) if split != "majority" else (m.get("majority") or {}).get("dev")
            if not got or got.get(key) is None:
                missing[s] = f"no {split} {key} in {self.where(backbone, s)}"
            elif split != "majority" and float(got[key]) in seen:
                missing[s] = f"{self.where(backbone, s)} repeats seed {seen[float(got[key])]}'s {key}"
            else:
                values[s] = float(got[key])
                seen.setdefault(values[s], s)
        return Seeds.of(values, missing)

    def reasons(self) -> list[str]:
        """What the fine-tunes recorded vs the paper's task, and the backbones fine-tuned alike."""
        art, out = self.rec.art, []
        for (b, s), m in self.metrics.items():
            if m is None:
                continue
            where = self.where(b, s)
            for key, want in (("task", self.task), ("variant", b), ("seed", s)):
                if m.get(key) is not None and m.get(key) != want:
                    out.append(f"{where} records {key} {m.get(key)}, not {want}")
            if b != SCRATCH:
                named = str(m.get("backbone") or "").replace("\\", "/").split("/")[-3:]
                want = self.rec.rel(art.model_dir(art.main, b, s)).split("/")[-3:]
                if named != want:
                    out.append(
                        f"{where} fine-tunes {m.get('backbone') or 'an unnamed backbone'}, not {'/'.join(want)}"
                    )
            if m.get("data_source") == "synthetic":
                out.append(f"synthetic stand-in for {TASK_NAMES[self.task]}")
            cap = (m.get("settings") or {}).get("max_train_examples")
            if cap:
                out.append(f"fine-tune capped at {cap} training examples ({where})")
        for s in art.seeds:
            settings = {
                b: {k: v for k, v in ((self.metrics[(b, s)] or {}).get("settings") or {}).items()}
                for b in art.backbones
                if self.metrics[(b, s)] is not None
            }
            ref = settings.get("ternary")
            for b, st in settings.items():
                diff = [
                    f"{k} {ref.get(k)} vs {st.get(k)}"
                    for k in sorted(set(ref or {}) | set(st))
                    if k not in SETTINGS_FREE and ref is not None and ref.get(k) != st.get(k)
                ]
                if diff:
                    out.append(f"fine-tunes of seed {s} not alike (ternary vs {b}): {', '.join(diff)}")
        return dedup(out)


def claims_finetuning(rec: Records) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    art = rec.art
    for task, key in TASK_PAPER_KEY.items():
        c, metric = PAPER[key], TASK_METRIC[task]
        claim = (
            f"{TASK_NAMES[task]} dev {METRIC_NAMES[metric]} of the ternary model (and above the "
            "majority class beyond seed noise, MCC > 0 beyond seed noise)"
        )
        if task not in art.tasks:
            rows.append(row(claim, f"{c.value}", None, not_run(f"{task} not in finetune.tasks"), c.source))
            continue
        pre_r, trail = pretrain_context(rec, ("ternary", "fp32"))
        ft = Tuned(rec, task, trail)
        r = dedup(pre_r + ft.reasons() + trail.reasons())
        ours, fp32 = ft.seeds("ternary", metric), ft.seeds("fp32", metric)
        base, mcc = ft.seeds("ternary", metric, "majority").stat, ft.seeds("ternary", "mcc")
        above = judge_seeds(
            ours,
            lambda st, rr, base=base: judge_above(
                st, base.mean, margin=seed_margin(st), what="majority class", reasons=rr
            ),
            r,
        )
        parts = [
            judge_seeds(ours, lambda st, rr, c=c: judge_close(st, c.value, abs_=METRIC_ABS, reasons=rr), r),
            above,
            judge_seeds(
                mcc, lambda st, rr: judge_above(st, 0.0, margin=seed_margin(st), what="MCC 0", reasons=rr), r
            ),
        ]
        base_txt = f"{base.mean:.2f}" if base.n else "not recorded"
        extra = f"; majority class {base_txt}; FP32 twin {fp32.stat.fmt()}"
        rows.append(row(claim, f"{c.value}", ours.stat, judge_all(parts).plus(extra), c.source, trail))
        if task == "mrpc":
            rows.append(
                row(
                    "MRPC F1 above the majority-class baseline (measured) by more than seed noise",
                    f"{c.value} vs baseline {base_txt}",
                    ours.stat,
                    above,
                    f"{c.source}; baseline measured here",
                    trail,
                )
            )
        rows.append(_transfer_row(ft, metric, ours, r))
        if task == "mrpc":
            d = DISTILBERT_MRPC
            v = judge_seeds(
                ours,
                lambda st, rr, d=d: judge_above(
                    st, d["value"], margin=seed_margin(st), what="DistilBERT", reasons=rr
                ),
                r,
            )
            rows.append(
                row(
                    "ternary MRPC F1 surpasses DistilBERT (by more than seed noise)",
                    f"{c.value} > DistilBERT",
                    ours.stat,
                    v,
                    f"{c.source}; DistilBERT {d['value']}: {d['source']}",
                    trail,
                )
            )
    return rows


def _transfer_row(ft: Tuned, metric: str, ours: Seeds, reasons: list[str]) -> dict[str, Any]:
    """Pretraining helps: the ternary twin beats the same fine-tune from random init (scratch)."""
    task = ft.task
    claim = f"non-trivial transfer on {TASK_NAMES[task]}: ternary twin beats the {SCRATCH} control"
    source = f"{PAPER[TASK_PAPER_KEY[task]].source} (pretraining helps); control measured here"
    paper = f"{PAPER[TASK_PAPER_KEY[task]].value} vs scratch (not reported)"
    if not ft.rec.art.controls.get("scratch"):
        return row(claim, paper, None, not_run("controls.scratch is off"), source)
    scratch = ft.seeds(SCRATCH, metric)
    r = [*reasons, *scratch.problems()]
    sc = scratch.stat

    def rule(st: Stat, rr: list[str]):
        return judge_above(st, sc.mean, margin=seed_margin(st, sc), what=SCRATCH, reasons=rr)

    v = judge_seeds(ours, rule, r) if sc.n else not_run("; ".join(scratch.problems()) or "no scratch result")
    detail = f"; {SCRATCH} {sc.fmt()}, ternary {ours.stat.fmt()} ({METRIC_NAMES[metric]})"
    return row(claim, paper, ours.stat, v.plus(detail), source, ft.trail)
