"""Memory and latency claims from the bench CSVs, like with like.

Only rows whose ``role`` is ``deployed`` decide (a file without the column is refused); the GPU
claims read cuda rows and GPU peak memory for both twins (never host RSS); both rows must have
run the same workload (prompt/new tokens, batch, threads); a latency verdict needs at least
MIN_REPEATS timings per row and an IQR small against the tolerance.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ternarylm.report.claims.judge import Verdict, judge_close, not_run, num
from ternarylm.report.claims.records import Records
from ternarylm.report.claims.row import row
from ternarylm.report.claims.setup import dedup, pretrain_context
from ternarylm.report.formats import ROLE_COLUMN
from ternarylm.report.paper import (
    LATENCY_IQR_FRAC,
    LATENCY_REL,
    MEMORY_REL,
    MIN_REPEATS,
    PAPER,
)
from ternarylm.report.tables import Stat, normalize_bench, pick_rows

WORKLOAD = ("prompt_tokens", "new_tokens", "batch", "threads")


def memory_mb(r: pd.Series, device: str) -> float:
    """One kind per device: torch's GPU peak on cuda, peak RSS above the process baseline on CPU."""
    col = "gpu_peak_mb" if device == "cuda" else "process_mb"
    v = pd.to_numeric(pd.Series([r.get(col)]), errors="coerce").iat[0]
    return float(v) if pd.notna(v) else math.nan


def _workload_reasons(f: pd.Series, t: pd.Series) -> list[str]:
    diffs = []
    for k in WORKLOAD:
        a, b = f.get(k), t.get(k)
        if a is None or b is None or (pd.isna(a) and pd.isna(b)):
            continue
        if pd.isna(a) or pd.isna(b) or float(a) != float(b):
            diffs.append(f"{k} {a} vs {b}")
    return [f"workloads differ (FP32 vs ternary): {', '.join(diffs)}"] if diffs else []


def _noise_reasons(f: pd.Series, t: pd.Series) -> list[str]:
    """Latency needs >= MIN_REPEATS timings per row and an IQR within LATENCY_IQR_FRAC of the tolerance."""
    out = []
    for r in (f, t):
        name = f"{r['variant']} {r['format']}"
        reps = pd.to_numeric(pd.Series([r.get("repeats")]), errors="coerce").iat[0]
        if pd.isna(reps) or reps < MIN_REPEATS:
            times = f"{reps:g} time(s)" if pd.notna(reps) else "an unrecorded number of times"
            out.append(f"noise: {name} timed {times}, a latency verdict needs {MIN_REPEATS}")
            continue
        iqr, ms = r.get("ms_per_token_iqr"), r.get("ms_per_token")
        if pd.isna(iqr) or iqr / ms > LATENCY_IQR_FRAC * LATENCY_REL:
            out.append(
                f"noise: {name} IQR {num(iqr)} ms is more than {LATENCY_IQR_FRAC * LATENCY_REL:.0%} of "
                f"its {num(ms)} ms/token"
            )
    return out


def _bench_rows(rec: Records, device: str) -> list[dict[str, Any]]:
    """The memory and latency rows of one device; only cuda rows may decide the (GPU) claims."""
    art = rec.art
    mem, red, lat = PAPER["memory_mb"], PAPER["memory_reduction"], PAPER["latency_ms"]
    on = "" if device == "cuda" else f" on {device.upper()}"
    mem_claim = f"memory reduction FP32 -> ternary, inference memory{on} ({mem.value['fp32']} -> {mem.value['ternary']} MB)"
    lat_claim = f"latency parity{on}: ternary per-token latency / FP32's"
    paper_lat = (
        f"{lat.value['ternary']} vs {lat.value['fp32']} ms ({lat.value['ternary'] / lat.value['fp32']:.3f})"
    )
    srcs = (f"{red.source}; {mem.source}", lat.source)
    trail = rec.trail()

    def both(v: Verdict) -> list[dict[str, Any]]:
        return [
            row(mem_claim, f"{red.value}x", None, v, srcs[0], trail),
            row(lat_claim, paper_lat, None, v, srcs[1], trail),
        ]

    if device not in art.devices:
        return both(not_run(f"bench.devices has no {device} (the paper measured a GPU)"))
    path = art.bench_csv(device)
    df = rec.csv(path, trail)
    rec.json(art.bench_env(device), trail)
    where = rec.rel(path)
    if df is None:
        return both(not_run(f"{where} absent"))
    if ROLE_COLUMN not in df:
        return both(not_run(f"{where} has no {ROLE_COLUMN} column: refused (rerun bench)"))
    if "device" in df:  # the file of one device holds that device's rows only; others never decide
        df = df[df["device"].astype(str).str.split(":").str[0] == device]
    if df.empty:
        return both(not_run(f"no {device} rows in {where}"))
    deployed = normalize_bench(df[df[ROLE_COLUMN] == "deployed"], path)
    if deployed.empty:
        return both(not_run(f"no deployed rows in {where}"))
    picked = pick_rows(deployed)
    f, t = picked["fp32"], picked["ternary"]
    if f is None or t is None:
        why = "FP32 row" if f is None else "deployed ternary row"
        return both(not_run(f"{where} has no {why}"))
    pre, _ = pretrain_context(rec, ("ternary", "fp32"))
    model = [r for r in pre if r.startswith(("model (", "ternary twin", "FP32 twin", "no model record"))]
    reasons = dedup(model + _workload_reasons(f, t) + trail.reasons())
    if device != "cuda":  # never a verdict on the GPU claim, whatever the numbers
        reasons = [f"{device.upper()}, the paper measured a GPU", *reasons]
    kind = "GPU peak" if device == "cuda" else "peak RSS above baseline"
    mf, mt = memory_mb(f, device), memory_mb(t, device)
    if not (math.isfinite(mf) and math.isfinite(mt)):
        lacking = [f"{r['variant']} {r['format']}" for r, m in ((f, mf), (t, mt)) if not math.isfinite(m)]
        v, ratio = not_run(f"{where}: no {kind} memory for {', '.join(lacking)}"), None
    else:
        ratio = Stat(mf / mt, math.nan, 1)
        v = judge_close(ratio, red.value, rel=MEMORY_REL, reasons=reasons).plus(
            f"; {kind}: FP32 {f['format']} {mf:.1f} MB, ternary {t['format']} {mt:.1f} MB; weights "
            f"{f['weight_mb']:.1f} vs {t['weight_mb']:.1f} MB ({f['weight_mb'] / t['weight_mb']:.2f}x)"
        )
    ms_f, ms_t = f.get("ms_per_token"), t.get("ms_per_token")
    if pd.isna(ms_f) or pd.isna(ms_t) or not ms_f > 0:
        lacking = [
            f"{r['variant']} {r['format']}" for r, m in ((f, ms_f), (t, ms_t)) if pd.isna(m) or not m > 0
        ]
        lv, lat_ratio = not_run(f"{where}: no ms_per_token for {', '.join(lacking)}"), None
    else:
        lat_ratio = Stat(ms_t / ms_f, math.nan, 1)
        noise = _noise_reasons(f, t)
        lv = judge_close(lat_ratio, 1.0, rel=LATENCY_REL, what="parity (1.0)", reasons=reasons + noise).plus(
            f"; ternary {t['format']} {num(ms_t)} ms/token, FP32 {f['format']} {num(ms_f)} ms/token"
        )
    return [
        row(mem_claim, f"{red.value}x", ratio, v, srcs[0], trail),
        row(lat_claim, paper_lat, lat_ratio, lv, srcs[1], trail, 3),
    ]


def claims_efficiency(rec: Records) -> list[dict[str, Any]]:
    """The GPU claims (decided by cuda rows only), then the same rows on each other device."""
    others = [d for d in rec.art.devices if d != "cuda"]
    return _bench_rows(rec, "cuda") + [r for d in others for r in _bench_rows(rec, d)]
