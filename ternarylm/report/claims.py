"""The claims engine: each claim of the paper, ours, and a verdict (reproduced / not reproduced /
not comparable / not run). A run whose setup differs from the paper's is "not comparable" and the
reason says how; the comparison is still shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ternarylm.report.artifacts import Artifacts
from ternarylm.report.paper import (
    CORPUS_NAMES,
    DISTILBERT_MRPC,
    LATENCY_REL,
    LOSS_REL,
    MEMORY_REL,
    METRIC_ABS,
    METRIC_NAMES,
    NOT_COMPARABLE,
    NOT_REPRODUCED,
    NOT_RUN,
    PAPER,
    PPL_REL,
    RATIO_REL,
    REPRODUCED,
    SPARSITY_PP,
    TASK_METRIC,
    TASK_NAMES,
    TASK_PAPER_KEY,
    VARIANT_NAMES,
)
from ternarylm.report.tables import (
    Stat,
    bench_table,
    convergence,
    finetune_table,
    pick_rows,
    sparsity_long,
    write_table,
)

# --- comparability and verdicts ------------------------------------------------------------------


def model_reasons(cfg: dict[str, Any]) -> list[str]:
    """Why the configured model is not the paper's (empty if it is)."""
    setup, m = PAPER["setup"].value, cfg["model"]
    vocab = (cfg.get("tokenizer") or {}).get("vocab_size")
    diffs = [
        f"{k}={got} (paper {setup[k]})"
        for k, got in (("d_model", m["d_model"]), ("n_layers", m["n_layers"]), ("n_heads", m["n_heads"]))
        if got != setup[k]
    ]
    if vocab is not None and vocab != setup["vocab_size"]:
        diffs.append(f"vocab_size={vocab} (paper {setup['vocab_size']})")
    return [f"smaller/different model: {', '.join(diffs)}"] if diffs else []


def data_reasons(art: Artifacts, corpus: str) -> list[str]:
    setup, cfg = PAPER["setup"].value, art.cfg
    if cfg.get("data_source") == "synthetic" or corpus == "synthetic":
        return [f"synthetic offline corpus ({corpus}), not the paper's data"]
    reasons = []
    if corpus == art.main and corpus != setup["corpus"]:
        reasons.append(f"main corpus {corpus} (paper {setup['corpus']})")
    if corpus in ("tinystories", "writingprompts"):
        n = art.n_train_docs(corpus)
        if n is None:
            n = ((cfg.get("corpora") or {}).get(corpus) or {}).get("max_train_docs")
        if n is not None and n < setup["train_docs"]:
            reasons.append(f"{n} {corpus} training documents (paper {setup['train_docs']})")
    return reasons


def training_reasons(art: Artifacts, corpus: str) -> list[str]:
    setup, t = PAPER["setup"].value, art.cfg["train"]
    reasons = []
    if art.epochs(corpus) != setup["epochs"]:
        reasons.append(f"epochs={art.epochs(corpus)} (paper {setup['epochs']})")
    if t.get("max_steps"):
        reasons.append(f"capped at train.max_steps={t['max_steps']}")
    return reasons


def pretrain_reasons(art: Artifacts, corpus: str | None = None) -> list[str]:
    corpus = corpus or art.main
    return model_reasons(art.cfg) + data_reasons(art, corpus) + training_reasons(art, corpus)


def scale_note(reasons: Sequence[str]) -> str:
    """The line every notebook opens with: is this run the paper's setup, and if not, how not."""
    if not reasons:
        return "**Scale of this run vs the paper:** same setup as the paper."
    return "**Scale of this run vs the paper:** not comparable — " + "; ".join(reasons) + "."


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str


def _judge(ok: bool, detail: str, reasons: Sequence[str]) -> Verdict:
    if reasons:
        return Verdict(NOT_COMPARABLE, "; ".join(reasons) + f" — {detail}")
    return Verdict(REPRODUCED if ok else NOT_REPRODUCED, detail)


def judge_close(
    ours: Stat,
    paper: float,
    *,
    rel: float | None = None,
    abs_: float | None = None,
    reasons: Sequence[str] = (),
) -> Verdict:
    """Reproduced when |ours.mean - paper| <= tolerance (relative to the paper value, or absolute)."""
    if ours.n == 0:
        return Verdict(NOT_RUN, "no result")
    tol = rel * abs(paper) if rel is not None else float(abs_ or 0.0)
    diff = ours.mean - paper
    return _judge(abs(diff) <= tol, f"ours - paper = {diff:+.3g} (tolerance ±{tol:.3g})", reasons)


def judge_greater(ours: Stat, ref: float, *, what: str = "reference", reasons: Sequence[str] = ()) -> Verdict:
    """Reproduced when ours.mean > ref."""
    if ours.n == 0:
        return Verdict(NOT_RUN, "no result")
    rel = ">" if ours.mean > ref else "<="
    return _judge(ours.mean > ref, f"ours {ours.mean:.4g} {rel} {ref:.4g} ({what})", reasons)


def judge_at_most(ours: Stat, limit: float, *, what: str = "limit", reasons: Sequence[str] = ()) -> Verdict:
    """Reproduced when ours.mean <= limit."""
    if ours.n == 0:
        return Verdict(NOT_RUN, "no result")
    rel = "<=" if ours.mean <= limit else ">"
    return _judge(ours.mean <= limit, f"ours {ours.mean:.4g} {rel} {limit:.4g} ({what})", reasons)


def judge_range(ours: Stat, lo: float, hi: float, *, tol: float, reasons: Sequence[str] = ()) -> Verdict:
    """Reproduced when lo - tol <= ours.mean <= hi + tol."""
    if ours.n == 0:
        return Verdict(NOT_RUN, "no result")
    ok = lo - tol <= ours.mean <= hi + tol
    return _judge(ok, f"ours {ours.mean:.3g} vs paper range [{lo}, {hi}] (± {tol})", reasons)


# --- the claims table ----------------------------------------------------------------------------

CLAIM_FIELDS = [
    "claim",
    "paper_value",
    "ours",
    "n_seeds",
    "verdict",
    "reason",
    "source",
    "ours_mean",
    "ours_std",
]


def _row(claim: str, paper_value: str, ours: Stat | None, v: Verdict, source: str, digits: int = 2) -> dict:
    ours = ours or Stat(math.nan, math.nan, 0)
    return {
        "claim": claim,
        "paper_value": paper_value,
        "ours": ours.fmt(digits) if ours.n or v.verdict == NOT_RUN else "not computed",
        "n_seeds": ours.n,
        "verdict": v.verdict,
        "reason": v.reason,
        "source": source,
        "ours_mean": ours.mean,
        "ours_std": ours.std,
    }


def claims_pretraining(art: Artifacts) -> list[dict[str, Any]]:
    ev = art.eval_table()
    reasons = pretrain_reasons(art)
    tern, fp32 = ev[ev["variant"] == "ternary"], ev[ev["variant"] == "fp32"]
    c, std = PAPER["val_ppl"], PAPER["val_ppl_std"].value
    smooth, plain = Stat.of(tern["val_ppl_smoothed"]), Stat.of(tern["val_ppl"])
    rows = [
        _row(
            f"{CORPUS_NAMES.get(art.main, art.main)} val PPL of the ternary model, label-smoothed "
            "(exp of the training objective: the kind the paper's number is)",
            f"{c.value} ± {std}",
            smooth,
            judge_close(smooth, c.value, rel=PPL_REL, reasons=reasons),
            c.source,
        ),
        _row(
            "same, true PPL = exp(plain CE) — shown for reference",
            f"{c.value} ± {std}",
            plain,
            Verdict(
                NOT_COMPARABLE,
                "the paper's perplexity is exp of the label-smoothed loss (smoothing "
                f"{ev['label_smoothing'].iat[0]}); plain-CE PPL is the quantity other LM papers report",
            ),
            c.source,
        ),
    ]
    ratio = PAPER["loss_ratio"]
    for v, g in (("ternary", tern), ("fp32", fp32)):
        st = Stat.of(g["loss_ratio_smoothed"])
        plain_r = Stat.of(g["loss_ratio"])
        verdict = judge_close(st, ratio.value[v], rel=RATIO_REL, reasons=reasons)
        rows.append(
            _row(
                f"val/train loss ratio, {VARIANT_NAMES[v]} (label-smoothed; plain CE: {plain_r.fmt(3)})",
                f"{ratio.value[v]}x",
                st,
                verdict,
                ratio.source,
                3,
            )
        )
    # per seed: the twins of one seed share init and data order
    by_seed = ev.pivot_table(index="seed", columns="variant", values="loss_ratio_smoothed")
    gap = (
        Stat.of((by_seed["fp32"] - by_seed["ternary"]).tolist())
        if {"fp32", "ternary"} <= set(by_seed)
        else Stat.of([])
    )
    rows.append(
        _row(
            "implicit regularization: the ternary twin overfits less (FP32 ratio - ternary ratio > 0, per seed)",
            f"{ratio.value['fp32'] - ratio.value['ternary']:.2f}",
            gap,
            judge_greater(gap, 0.0, what="no difference", reasons=reasons),
            ratio.source,
            3,
        )
    )
    return rows


def claims_finetuning(art: Artifacts) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    ft = finetune_table(art) if art.tasks else pd.DataFrame()
    reasons = pretrain_reasons(art)
    for task, key in TASK_PAPER_KEY.items():
        c, metric = PAPER[key], TASK_METRIC[task]
        claim = f"{TASK_NAMES[task]} dev {METRIC_NAMES[metric]} of the ternary model"
        if task not in art.tasks:
            rows.append(
                _row(claim, f"{c.value}", None, Verdict(NOT_RUN, f"{task} not in finetune.tasks"), c.source)
            )
            continue
        g = ft[(ft["task"] == task) & (ft["split"] == "dev")]
        tern, fp32 = g[g["variant"] == "ternary"], g[g["variant"] == "fp32"]
        ours, base = Stat.of(tern[metric]), Stat.of(g[f"majority_{metric}"])
        r = list(reasons)
        if (g["data_source"] == "synthetic").any():
            r.append(f"synthetic stand-in for {TASK_NAMES[task]}")
        v = judge_close(ours, c.value, abs_=METRIC_ABS, reasons=r)
        extra = f"; majority-class baseline {base.mean:.2f}; FP32 twin {Stat.of(fp32[metric]).fmt()}"
        rows.append(_row(claim, f"{c.value}", ours, Verdict(v.verdict, v.reason + extra), c.source))
        if task == "mrpc":
            rows.append(
                _row(
                    "MRPC transfer is non-trivial: ternary F1 above the majority-class baseline (measured)",
                    f"{c.value} vs baseline {base.mean:.2f}",
                    ours,
                    judge_greater(ours, base.mean, what="majority-class F1", reasons=r),
                    f"{c.source}; baseline measured here",
                )
            )
            d = DISTILBERT_MRPC
            rows.append(
                _row(
                    "ternary MRPC F1 surpasses DistilBERT",
                    f"{c.value} > DistilBERT",
                    ours,
                    judge_greater(ours, d["value"], what="DistilBERT (Sanh et al. 2019)", reasons=r),
                    f"{c.source}; DistilBERT {d['value']}: {d['source']}",
                )
            )
    return rows


def claims_efficiency(art: Artifacts) -> list[dict[str, Any]]:
    mem, red, lat = PAPER["memory_mb"], PAPER["memory_reduction"], PAPER["latency_ms"]
    mem_claim = f"memory reduction FP32 -> ternary ({mem.value['fp32']} -> {mem.value['ternary']} MB)"
    lat_claim = "latency parity: ternary per-token latency / FP32's"
    paper_lat = (
        f"{lat.value['ternary']} vs {lat.value['fp32']} ms ({lat.value['ternary'] / lat.value['fp32']:.3f})"
    )
    if not art.devices:
        none = Verdict(NOT_RUN, "bench.devices is empty")
        return [
            _row(mem_claim, f"{red.value}x", None, none, red.source),
            _row(lat_claim, paper_lat, None, none, lat.source),
        ]
    device = "cuda" if "cuda" in art.devices else art.devices[0]
    picked = pick_rows(bench_table(art, device))
    f, t = picked["fp32"], picked["ternary"]
    if f is None or t is None:
        what = "fp32" if f is None else "deployed ternary"
        # baselines (fake-quant, no-cache, GPU dense cache) never decide; the GGUF rows need llama.cpp
        why = "" if f is None else " (its GGUF rows need llama-cpp-python: pip install -e '.[deploy]')"
        miss = Verdict(NOT_RUN, f"bench on {device} has no {what} row{why}")
        return [
            _row(mem_claim, f"{red.value}x", None, miss, red.source),
            _row(lat_claim, paper_lat, None, miss, lat.source),
        ]
    reasons = model_reasons(art.cfg)
    where = f"on {device}" + ("" if device == "cuda" else " (paper: GPU)")
    ratio = Stat(f["weight_mb"] / t["weight_mb"], math.nan, 1)
    floor = red.value * (1 - MEMORY_REL)
    v = judge_greater(ratio, floor, what=f"{1 - MEMORY_REL:.0%} of the paper's factor", reasons=reasons)
    detail = (
        f"; weights {where}: FP32 {f['format']} {f['weight_mb']:.1f} MB, ternary {t['format']} "
        f"{t['weight_mb']:.1f} MB"
    )
    lat_ratio = Stat(t["ms_per_token"] / f["ms_per_token"], math.nan, 1)
    lv = judge_at_most(lat_ratio, 1 + LATENCY_REL, what="parity limit", reasons=reasons)
    lat_detail = (
        f"; {where}: ternary {t['format']} {t['ms_per_token']:.3g} ms/token, FP32 {f['format']} "
        f"{f['ms_per_token']:.3g} ms/token"
    )
    return [
        _row(
            mem_claim,
            f"{red.value}x",
            ratio,
            Verdict(v.verdict, v.reason + detail),
            f"{red.source}; {mem.source}",
        ),
        _row(lat_claim, paper_lat, lat_ratio, Verdict(lv.verdict, lv.reason + lat_detail), lat.source, 3),
    ]


def claims_sparsity(art: Artifacts) -> list[dict[str, Any]]:
    sp = sparsity_long(art)
    tern = sp[sp["variant"] == "ternary"]
    reasons = pretrain_reasons(art)
    mid, bnd = PAPER["sparsity_middle"], PAPER["sparsity_boundary"]
    mid_layers = mid.value["layers"]
    pooled = tern[tern["module"] == "all"]
    n_layers, paper_layers = int(pooled["layer_index"].max()), PAPER["setup"].value["n_layers"]
    if n_layers == paper_layers:
        per_seed_mid = pooled[pooled["layer"].isin(mid_layers)].groupby("seed")["frac_zero"].mean() * 100
        per_seed_bnd = pooled[~pooled["layer"].isin(mid_layers)].groupby("seed")["frac_zero"].mean() * 100
        m, b = Stat.of(per_seed_mid), Stat.of(per_seed_bnd)
        diff = Stat.of((per_seed_mid - per_seed_bnd).dropna())
    else:  # the paper's middle/boundary split is defined by layer number
        m = b = diff = Stat.of([])
        reasons = [*reasons, f"{n_layers} layers: the paper's L5-L9 / boundary split needs {paper_layers}"]
    emb = Stat.of(tern[tern["layer"] == "Emb"]["frac_zero"] * 100)
    lo, hi = mid.value["range_pct"]
    blo, bhi = bnd.value["range_pct"]
    tol = SPARSITY_PP

    def judged(v: Verdict, st: Stat) -> Verdict:
        # same "reasons — detail" shape as every other verdict, so the notebook can footnote it
        return v if st.n else Verdict(NOT_COMPARABLE, "; ".join(reasons) + " — not computed")

    return [
        _row(
            f"zero weights in middle layers {mid_layers[0]}-{mid_layers[-1]} (%)",
            f"{lo}-{hi} %",
            m,
            judged(judge_range(m, lo, hi, tol=tol, reasons=reasons), m),
            mid.source,
            1,
        ),
        _row(
            "zero weights in boundary layers (the others) (%)",
            f"{blo}-{bhi} %",
            b,
            judged(judge_range(b, blo, bhi, tol=tol, reasons=reasons), b),
            bnd.source,
            1,
        ),
        _row(
            "middle layers are sparser than boundary layers (difference, pp)",
            f"> 0 (about {(lo + hi) / 2 - (blo + bhi) / 2:.0f} pp)",
            diff,
            judged(judge_greater(diff, 0.0, what="no difference", reasons=reasons), diff),
            mid.source,
            1,
        ),
        _row(
            "embedding zero fraction (%)",
            f"{PAPER['sparsity_pct'].value['Emb']} %",
            emb,
            Verdict(
                NOT_COMPARABLE,
                "our embedding is not ternarized (kept full precision, as the paper's architecture "
                "says); the value is what absmean ternarization of it would give",
            ),
            PAPER["sparsity_pct"].source,
            1,
        ),
    ]


def claims_convergence(art: Artifacts) -> list[dict[str, Any]]:
    _, finals = convergence(art)
    c = PAPER["final_loss"]
    rows = []
    for corpus, paper in c.value.items():
        f = finals[(finals["corpus"] == corpus) & (finals["variant"] == "ternary")]
        claim = f"final training loss on {CORPUS_NAMES[corpus]} (ternary, label-smoothed)"
        if corpus not in art.convergence_corpora or f.empty or f["n_seeds"].iat[0] == 0:
            why = f"{corpus} not in convergence_corpora"
            if corpus == "writingprompts":
                why += " (WritingPrompts needs the HF hub)"
            rows.append(_row(claim, f"{paper}", None, Verdict(NOT_RUN, why), c.source, 3))
            continue
        st = Stat(f["final_loss_mean"].iat[0], f["final_loss_std"].iat[0], int(f["n_seeds"].iat[0]))
        v = judge_close(st, paper, rel=LOSS_REL, reasons=pretrain_reasons(art, corpus))
        rows.append(_row(claim, f"{paper}", st, v, c.source, 3))
    return rows


def claims_table(art: Artifacts) -> pd.DataFrame:
    rows = (
        claims_pretraining(art)
        + claims_finetuning(art)
        + claims_efficiency(art)
        + claims_sparsity(art)
        + claims_convergence(art)
    )
    return pd.DataFrame(rows, columns=CLAIM_FIELDS)


def write_claims(claims: pd.DataFrame, path: str | Path) -> Path:
    """Write the claims table (``CLAIM_FIELDS``) atomically."""
    write_table(claims[CLAIM_FIELDS], Path(path).parent, Path(path).stem)
    return Path(path)
