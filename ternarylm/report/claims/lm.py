"""Language-modelling claims: perplexity, parity, loss ratios, regularization, the non-causal
control, the 55x data factor and the convergence losses — each read from the eval JSONs,
training logs and model records of the runs it judges."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from ternarylm.report.claims.judge import (
    Seeds,
    Verdict,
    judge_above,
    judge_all,
    judge_close,
    judge_each_seed,
    judge_factor,
    judge_seeds,
    not_run,
)
from ternarylm.report.claims.records import Records, Trail
from ternarylm.report.claims.row import row
from ternarylm.report.claims.setup import data_reasons, dedup, pretrain_context, tokenizer_reasons
from ternarylm.report.formats import NONCAUSAL
from ternarylm.report.paper import (
    COLLAPSE_FRAC,
    CORPUS_NAMES,
    DATA_FACTOR_REL,
    LOSS_REL,
    MIN_STD_SEEDS,
    NOT_COMPARABLE,
    NOTEBOOK,
    PAPER,
    PPL_PARITY_REL,
    PPL_REL,
    PPL_STD_FACTOR,
    RATIO_REL,
    REG_GAP_FRAC,
    VARIANT_NAMES,
)
from ternarylm.report.tables import Stat, epoch_means


def eval_seeds(rec: Records, variant: str, col: str, trail: Trail) -> Seeds:
    """``col`` of each seed's eval JSON; an absent file or field is a named missing seed."""
    art, values, missing = rec.art, {}, {}
    for s in art.seeds:
        ev = rec.eval(art.main, variant, s, trail)
        where = rec.rel(art.eval_json(art.main, variant, s))
        if ev is None:
            missing[s] = f"{where} absent"
        elif ev.get(col) is None:
            missing[s] = f"no {col} in {where}"
        else:
            values[s] = float(ev[col])
    seeds = Seeds.of(values, missing)
    # evaluations copied from another seed: identical numbers are one run, not two
    seen: dict[float, int] = {}
    for s, v in list(seeds.values.items()):
        if v in seen:
            seeds.missing[s] = f"repeats seed {seen[v]}'s {col} exactly (a copied file?)"
            del seeds.values[s]
        seen.setdefault(v, s)
    return seeds


def _pair(a: Seeds, b: Seeds, f) -> Seeds:
    """Per seed ``f(a, b)`` where both were measured; the others carried over as missing/diverged."""
    out = Seeds(missing={**a.missing, **b.missing})
    for s in sorted(set(a.values) | set(a.diverged) | set(b.values) | set(b.diverged)):
        x = a.values.get(s, a.diverged.get(s))
        y = b.values.get(s, b.diverged.get(s))
        if x is None or y is None:
            continue
        v = f(x, y)
        (out.values if math.isfinite(v) else out.diverged)[s] = v
    return out


def claims_pretraining(art_rec: Records) -> list[dict[str, Any]]:
    rec = art_rec
    reasons, trail = pretrain_context(rec, ("ternary", "fp32"))
    reasons = dedup(reasons + trail.reasons())
    tern_r, tern_t = pretrain_context(rec, ("ternary",))
    tern_r = dedup(tern_r + tern_t.reasons())
    c, std = PAPER["val_ppl"], PAPER["val_ppl_std"].value
    smooth = eval_seeds(rec, "ternary", "val_ppl_smoothed", tern_t)
    plain = eval_seeds(rec, "ternary", "val_ppl", tern_t)
    close = partial(judge_close, paper=c.value, rel=PPL_REL)
    rows = [
        row(
            f"{CORPUS_NAMES.get(rec.art.main, rec.art.main)} val PPL of the ternary model, label-smoothed "
            "(exp of the training objective: the kind the paper's number is)",
            f"{c.value} ± {std}",
            smooth.stat,
            judge_seeds(smooth, lambda st, r: close(st, reasons=r), tern_r),
            c.source,
            tern_t,
        ),
        row(
            "same, true PPL = exp(plain CE) — shown for reference",
            f"{c.value} ± {std}",
            plain.stat,
            Verdict(
                NOT_COMPARABLE,
                "the paper's perplexity is exp of the label-smoothed loss; plain-CE PPL is the quantity "
                "other LM papers report",
            ),
            c.source,
            tern_t,
        ),
        _ppl_std_row(smooth, tern_r, tern_t),
    ]
    for col, kind in (("val_ppl_smoothed", "label-smoothed"), ("val_ppl", "plain CE")):
        t, f = eval_seeds(rec, "ternary", col, trail), eval_seeds(rec, "fp32", col, trail)
        gap = _pair(t, f, lambda a, b: 100 * (a / b - 1))
        rule = partial(judge_close, paper=0.0, abs_=100 * PPL_PARITY_REL, what="parity (0 %)")
        v = judge_each_seed(
            gap,
            lambda st, r, rule=rule: rule(st, reasons=r),
            f"|gap| <= {100 * PPL_PARITY_REL:g} %",
            reasons,
            1,
        )
        rows.append(
            row(
                f"ternary PPL ≈ FP32 PPL ({kind}): (ternary / FP32 - 1) in %, every seed",
                f"0 % (± {100 * PPL_PARITY_REL:g} %)",
                gap.stat,
                v.plus(f"; FP32 twin {f.stat.fmt()}, ternary {t.stat.fmt()}"),
                f"{PAPER['ppl_parity'].source}: {PAPER['ppl_parity'].note}",
                trail,
                1,
            )
        )
    rows += _ratio_rows(rec, reasons, trail)
    rows += claims_noncausal(rec, reasons, trail)
    rows.append(claim_data_factor(rec))
    return rows


def _ppl_std_row(smooth: Seeds, reasons: list[str], trail: Trail) -> dict[str, Any]:
    c = PAPER["val_ppl_std"]
    claim = "cross-seed std of the ternary val PPL (label-smoothed)"
    st = smooth.stat
    if st.n == 0 and not smooth.diverged:
        return row(claim, f"{c.value}", None, not_run("; ".join(smooth.problems()) or "no result"), c.source)
    if st.n < MIN_STD_SEEDS:  # a std of 2 seeds has a 95 % interval spanning x0.45-x32
        why = f"{st.n} finite seed(s): a std needs at least {MIN_STD_SEEDS}"
        v = Verdict(NOT_COMPARABLE, "; ".join([*reasons, *smooth.problems(), why]) + " — not judged")
        if smooth.diverged:
            v = v.plus(f"; {smooth.divergence()}")
        shown = f"{st.n} seed(s)" if st.n < 2 else f"{st.std:.3g} over {st.n} seeds"
        return row(claim, f"{c.value}", Stat(st.std, math.nan, st.n), v, c.source, trail, shown=shown)
    sd = Seeds.of({0: st.std}, {})
    sd.diverged, sd.missing = dict(smooth.diverged), dict(smooth.missing)
    v = judge_seeds(sd, lambda s, r: judge_factor(s, c.value, factor=PPL_STD_FACTOR, reasons=r), reasons)
    shown = f"{st.std:.3g} over {st.n} seeds"
    return row(claim, f"{c.value}", Stat(st.std, math.nan, st.n), v, c.source, trail, shown=shown)


def _ratio_rows(rec: Records, reasons: list[str], trail: Trail) -> list[dict[str, Any]]:
    """T3's claims: each twin's val/train ratio, and the regularization gap between them, per seed."""
    ratio, rows = PAPER["loss_ratio"], []
    by_v = {}
    for v in ("ternary", "fp32"):
        st, plain = (eval_seeds(rec, v, col, trail) for col in ("loss_ratio_smoothed", "loss_ratio"))
        by_v[v] = st
        rule = partial(judge_close, paper=ratio.value[v], rel=RATIO_REL)
        rows.append(
            row(
                f"val/train loss ratio, {VARIANT_NAMES[v]} (label-smoothed; plain CE: {plain.stat.fmt(3)})",
                f"{ratio.value[v]}x",
                st.stat,
                judge_seeds(st, lambda s, r, rule=rule: rule(s, reasons=r), reasons),
                ratio.source,
                trail,
                3,
            )
        )
    gap = _pair(by_v["fp32"], by_v["ternary"], lambda a, b: a - b)
    paper_gap = ratio.value["fp32"] - ratio.value["ternary"]
    need = REG_GAP_FRAC * paper_gap  # at least half the paper's effect, not any positive gap
    v = judge_each_seed(
        gap,
        lambda st, r: judge_above(st, 0.0, margin=need, what="no gap", reasons=r),
        f"gap > {need:.2f}",
        reasons,
    )
    claim = (
        "implicit regularization: the ternary twin overfits less "
        f"(FP32 ratio - ternary ratio, every seed; needs > {need:.2f}, half the paper's gap)"
    )
    rows.append(row(claim, f"{paper_gap:.2f}", gap.stat, v, ratio.source, trail, 3))
    return rows


def claims_noncausal(rec: Records, reasons: list[str], trail: Trail) -> list[dict[str, Any]]:
    """The control for the paper's FP32 ratio: our FP32 twin without the causal mask (the authors'
    baseline has none) should show 3.51x and a collapsed train loss (every seed) if that explains it."""
    paper = PAPER["loss_ratio"].value["fp32"]
    claim = (
        "the FP32 baseline's 3.51x ratio comes from the missing causal mask: "
        f"{VARIANT_NAMES['fp32']} without the mask (control {NONCAUSAL}), val/train ratio"
    )
    source = f"{PAPER['loss_ratio'].source}; no mask in the authors' baseline: {NOTEBOOK}, cell 14"
    if not rec.art.controls.get("noncausal"):
        return [row(claim, f"{paper}x", None, not_run("controls.noncausal is off"), source, digits=3)]
    nc_r, nc_t = pretrain_context(rec, (NONCAUSAL,))
    nc_t.extend(trail)
    r = dedup([*reasons, *nc_r, *nc_t.reasons()])
    ratio = eval_seeds(rec, NONCAUSAL, "loss_ratio_smoothed", nc_t)
    nc_ce, causal = (eval_seeds(rec, v, "train_ce", nc_t) for v in (NONCAUSAL, "fp32"))
    drop = _pair(nc_ce, causal, lambda a, b: 1 - a / b)
    parts = [
        judge_seeds(ratio, lambda st, rr: judge_close(st, paper, rel=RATIO_REL, reasons=rr), r),
        # "collapses": its train CE at most COLLAPSE_FRAC of the causal twin's, every seed
        judge_each_seed(
            drop,
            lambda st, rr: judge_above(st, 0.0, margin=1 - COLLAPSE_FRAC, what="drop", reasons=rr),
            f"train-CE drop vs causal FP32 > {1 - COLLAPSE_FRAC:g}",
            r,
        ),
    ]
    causal_ratio = eval_seeds(rec, "fp32", "loss_ratio_smoothed", nc_t)
    detail = (
        f"; causal FP32 ratio {causal_ratio.stat.fmt(3)}; "
        f"train CE: non-causal {nc_ce.stat.fmt(3)}, causal FP32 {causal.stat.fmt(3)}"
    )
    return [row(claim, f"{paper}x", ratio.stat, judge_all(parts).plus(detail), source, nc_t, 3)]


def claim_data_factor(rec: Records) -> dict[str, Any]:
    art = rec.art
    c, words = PAPER["data_factor"], PAPER["distilbert_words"]
    claim = (
        "55x less pretraining data than DistilBERT: DistilBERT's corpus (words) / our train split "
        "(WordPiece tokens, one pass)"
    )
    source = f"{c.source}; {words.source}"
    trail = rec.trail()
    meta = rec.token_meta(art.main, "train", trail)
    if meta is None or meta.get("n_tokens") is None:
        why = f"no n_tokens in {rec.rel(art.tokens(art.main, 'train', 'json'))}"
        return row(claim, f"{c.value}x", None, not_run(why), source, trail, 1)
    n = int(meta["n_tokens"])
    reasons = data_reasons(rec, art.main, trail) + tokenizer_reasons(rec, trail)
    model = rec.model(art.main, "ternary", art.seeds[0], trail) or {}
    epochs = (model.get("train") or {}).get("epochs")
    ours = Stat(words.value / n, math.nan, 1)
    v = judge_close(ours, c.value, rel=DATA_FACTOR_REL, reasons=dedup(reasons + trail.reasons()))
    seen = (
        f"{epochs} epochs (config.json): {n * epochs:,} tokens seen, {words.value / (n * epochs):.3g}x"
        if epochs
        else "epochs not recorded"
    )
    detail = f"; {words.value / 1e9:.1f} billion words vs our {n:,} tokens ({seen})"
    return row(claim, f"{c.value}x", ours, v.plus(detail), source, trail, 1, shown=f"{ours.mean:.1f}x")


def claims_convergence(rec: Records) -> list[dict[str, Any]]:
    art, c, rows = rec.art, PAPER["final_loss"], []
    for corpus, paper in c.value.items():
        claim = f"final training loss on {CORPUS_NAMES[corpus]} (ternary, label-smoothed)"
        runs = [r for r in art.convergence_runs(corpus) if r[1] == "ternary"]
        if not runs:
            why = f"{corpus} not in convergence_corpora"
            if corpus == "writingprompts":
                why += " (WritingPrompts needs the HF hub)"
            rows.append(row(claim, f"{paper}", None, not_run(why), c.source, digits=3))
            continue
        reasons, trail = pretrain_context(rec, ("ternary",), corpus)
        values, missing = {}, {}
        for _, v, s in runs:
            log = rec.log(corpus, v, s, trail)
            where = rec.rel(art.metrics_csv(corpus, v, s))
            if log is None or log.get("train_loss") is None or log["train_loss"].dropna().empty:
                missing[s] = f"no train_loss in {where}"
                continue
            values[s] = float(epoch_means(log)["train_loss"].iat[-1])
        seeds = Seeds.of(values, missing)
        rule = partial(judge_close, paper=paper, rel=LOSS_REL)
        v = judge_seeds(seeds, lambda st, r, rule=rule: rule(st, reasons=r), dedup(reasons + trail.reasons()))
        rows.append(row(claim, f"{paper}", seeds.stat, v, c.source, trail, 3))
    return rows
