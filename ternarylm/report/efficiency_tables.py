"""T6 (efficiency): bench results checked and normalised, the rows that stand for each model form,
and the paper-comparable memory/latency table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ternarylm.layout import ROLE_COLUMN
from ternarylm.report.artifacts import Artifacts
from ternarylm.report.paper import NOT_RUN, PAPER

BENCH_COLUMNS = ("variant", "format", "batch", "weight_mb", "ms_per_token")


def normalize_bench(df: pd.DataFrame, path: str | Path = "bench results") -> pd.DataFrame:
    """Check the bench columns (see ternarylm.bench), make numbers numeric, add ``runtime``.

    ``runtime`` is the part of the format before the first dash (``torch``, ``gguf``), so twins are
    compared within one runtime.
    """
    lacking = [c for c in BENCH_COLUMNS if c not in df.columns]
    if lacking:
        raise ValueError(f"{path}: missing column(s) {lacking}; has {list(df.columns)}")
    out = df.copy()
    numeric = ("batch", "threads", "weight_mb", "peak_rss_mb", "base_rss_mb", "gpu_peak_mb")
    for c in (*numeric, "ms_per_token", "ms_per_token_iqr", "tokens_per_s"):
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce")
    out["variant"] = out["variant"].astype(str)
    out["format"] = out["format"].astype(str)
    out["runtime"] = out["format"].str.split("-").str[0]
    if {"peak_rss_mb", "base_rss_mb"} <= set(out.columns):
        out["process_mb"] = out["peak_rss_mb"] - out["base_rss_mb"]
    return out


def bench_table(art: Artifacts, device: str) -> pd.DataFrame:
    """bench/{device}/results.csv, checked and normalized (see :func:`normalize_bench`)."""
    path = art.bench_csv(device)
    return normalize_bench(art.read_csv(path), path).assign(device=device)


def pick_rows(bench: pd.DataFrame) -> dict[str, pd.Series | None]:
    """The rows that stand for the paper's Ternary, FP32 and INT8 columns, at the smallest batch.

    Ternary: the ternary twin's deployed format with the smallest weights. FP32 and INT8:
    the fp32 twin in the same runtime at 32 / 8 bits (else torch), so latency compares like with like.
    """
    b = bench[bench["batch"] == bench["batch"].min()]
    tern = b[b["variant"] == "ternary"]
    if ROLE_COLUMN in tern:  # a baseline (fake-quant fp32, no-cache, GPU dense cache) never stands for it
        tern = tern[tern[ROLE_COLUMN] == "deployed"]
    tern = tern.sort_values("weight_mb")
    runtime = tern["runtime"].iat[0] if not tern.empty else "torch"
    fp = b[b["variant"] == "fp32"]

    def first(pattern: str) -> pd.Series | None:
        for rt in dict.fromkeys([runtime, "torch"]):
            hit = fp[(fp["runtime"] == rt) & fp["format"].str.contains(pattern, regex=True)]
            if not hit.empty:
                return hit.iloc[0]
        return None

    return {
        "fp32": first(r"fp32|f32"),
        "int8": first(r"int8|q8"),
        "ternary": tern.iloc[0] if not tern.empty else None,
    }


def device_kind(device: str) -> str:
    """CPU or GPU: what the paper's GPU numbers may be compared with (bench.devices: cpu, cuda)."""
    return "CPU" if device.lower().startswith("cpu") else "GPU"


T6_COLUMNS = ["device", "device_kind", "threads", "column", "variant", "format", "batch"]
T6_COLUMNS += ["weight_mb", "process_mb", "gpu_peak_mb", "inference_mb", "ms_per_token", "ms_per_token_iqr"]
T6_COLUMNS += ["repeats"]  # timed runs behind the median: one run has no spread to show


def t6_efficiency(art: Artifacts) -> pd.DataFrame:
    """T6: the paper's FP32 / INT8 / Ternary memory and latency beside ours on each bench device.

    Memory comes in kinds that are never mixed in one column: ``weight_mb`` (bytes of the weights
    in that format), ``process_mb`` (peak RSS above the process baseline: what the process adds),
    ``gpu_peak_mb`` (CUDA only: torch's peak allocated GPU memory) and ``inference_mb`` (the
    paper's GPU inference memory; it does not say what it counts). ``device_kind`` says CPU or GPU;
    ``ms_per_token_iqr`` is the interquartile range of the timed runs around the median.
    """
    rows: list[dict[str, Any]] = []
    mem, lat = PAPER["memory_mb"].value, PAPER["latency_ms"].value
    for k in ("fp32", "int8", "ternary"):
        rows.append(
            {"device": "paper", "device_kind": "GPU", "column": k}
            | {"inference_mb": mem[k], "ms_per_token": lat[k]}
        )
    for d in art.devices:
        for k, r in pick_rows(bench_table(art, d)).items():
            base = {"device": d, "device_kind": device_kind(d), "column": k}
            if r is None:
                rows.append(base | {"format": NOT_RUN})
                continue
            rows.append(
                base
                | {c: r.get(c) for c in ("threads", "variant", "format", "batch", "weight_mb", "process_mb")}
                | {c: r.get(c) for c in ("gpu_peak_mb", "ms_per_token", "ms_per_token_iqr", "repeats")}
            )
    return pd.DataFrame(rows).reindex(columns=T6_COLUMNS)


def bench_all(art: Artifacts) -> pd.DataFrame:
    """Every benchmark row of every configured device."""
    frames = [bench_table(art, d) for d in art.devices]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
