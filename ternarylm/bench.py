"""`ternarylm bench`: weight size, peak memory and decode latency of every deployed form (T6).

Rows are variant x format x batch:

  format        variant   what runs
  torch-fp32    both      PyTorch eager fp32 (ternary: the QAT checkpoint as trained, fake-quant)
  torch-nocache ternary   the QAT checkpoint in fp32 *without* a KV cache: every step re-runs the
                          whole sequence (what the seed notebook measured); batch 1 only
  torch-bf16    both      PyTorch eager bf16
  torch-int8    fp32      ``torch.ao`` dynamic int8 quantization of every nn.Linear (the INT8 baseline)
  torch-packed  ternary   packed 2-bit codes, int8 x int8 matmul (ternarylm.packed); on a GPU the
                          codes dequantized once and cached (a baseline: see role)
  torch-w2      ternary   packed 2-bit codes kept 2-bit, W1.58A8 Triton kernels (ternarylm.w2); the
                          deployed GPU form. On CPU the pure-torch reference kernel runs (a baseline)
  hf-bitnet     ternary   the ``export --format hf --hf-quant bitnet`` folder run by transformers
                          (AutoBitLinear: codes unpacked at load, 8-bit activations); bf16 on a GPU,
                          fp32 eager on CPU (a baseline there). Needs the ``eval`` extra
  gguf-tq2_0    ternary   llama.cpp, TQ2_0 projections, F16 embedding/head
  gguf-tq2_0-q8 ternary   llama.cpp, TQ2_0 projections, Q8_0 embedding/head
  gguf-tq1_0    ternary   llama.cpp, TQ1_0 projections, F16 embedding/head
  gguf-f32/f16  fp32      llama.cpp, everything F32 / F16 (norms F32)
  gguf-q8_0     fp32      llama.cpp, every matrix Q8_0 (llama.cpp's INT8)

Columns: weight_mb = bytes of the weights in that format (file size for GGUF / packed,
tensor bytes in memory for torch), MB = 10^6 bytes; rss_mb = resident memory of the measuring
process after decoding (model, KV cache, libraries), load_rss_mb = the same right after loading,
before any forward, peak_rss_mb = its peak (loading and conversion transients included),
base_rss_mb = the process before loading the model (Python + libraries: ~250 MB with torch,
~45 MB with llama-cpp-python alone); gpu_load_mb / gpu_peak_mb = on CUDA only, torch's allocated
GPU memory after loading and its peak while decoding that batch (``max_memory_allocated``);
ms_per_token = decode time per step with the KV cache after a ``prompt_tokens`` prefill, median
of ``repeats`` runs after ``warmup`` runs, and ms_per_token_iqr its interquartile range over those
runs (a format whose single run takes longer than ``budget_s / repeats`` gets fewer runs, but never
fewer than ``min(repeats, 3)``); tokens_per_s = batch * 1000 / ms_per_token; decode = how the
steps ran: ``kv-cache`` (eager, ``forward_cached``; hf-bitnet: transformers' cache), ``no-cache``,
``cuda-graph`` (every torch KV-cache row on CUDA: a fixed-shape step replayed as one CUDA graph,
ternarylm.static_decode; ``kv-cache`` there means its capture failed, logged) or ``llama.cpp``.
GPU rows' memory is ``gpu_peak_mb``: the *_rss_mb columns are host memory there.
role = ``deployed`` for a form the model ships as on that device (CPU: GGUF, the packed int8
kernel, the fp32 twin's torch-fp32/-bf16/-int8 and GGUF forms; GPU: torch-w2 and hf-bitnet, the fp32
twin's torch-fp32), ``baseline`` for measurement references that must never decide a verdict: the
ternary QAT checkpoint run as float (torch-fp32/-bf16, fake-quant), torch-nocache, torch-packed on a
GPU (its weights cached dequantized and dense: no ternary kernel, no ternary memory), torch-bf16 of
the fp32 twin on a GPU (the paper's FP32 number is fp32), and the GPU forms torch-w2 / hf-bitnet on
CPU; see :func:`row_role`.
Each format is measured in a fresh subprocess (ternarylm/bench_worker.py) so peak memory belongs
to that format alone; this module plans the rows, exports the files and writes the CSV.

``--make-random DIR`` builds both twins at the config's model size with random weights, so the
paper-size measurement needs no training (speed and size do not depend on the weight values).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ternarylm.config import resolve
from ternarylm.identity import check_model
from ternarylm.io import UserError, read_json, write_csv, write_json
from ternarylm.layout import ROLE_COLUMN
from ternarylm.provenance import provenance

log = logging.getLogger("ternarylm.bench")


@dataclass(frozen=True)
class Format:
    variants: tuple[str, ...]
    gguf: dict[str, str] = field(default_factory=dict)  # export_gguf keyword arguments
    cpu_only: bool = False
    batch1_only: bool = False
    deployed: tuple[str, ...] = ()  # variants for which this is a deployed form (else baseline)
    deployed_on: tuple[str, ...] = ("cpu", "cuda")  # devices where it is (elsewhere baseline)


# the one format table: which twins run it, how it is exported, where it can run, its role
FORMATS: dict[str, Format] = {
    "torch-fp32": Format(("ternary", "fp32"), deployed=("fp32",)),
    "torch-nocache": Format(("ternary",), batch1_only=True),
    "torch-bf16": Format(("ternary", "fp32"), deployed=("fp32",), deployed_on=("cpu",)),
    "torch-int8": Format(("fp32",), cpu_only=True, deployed=("fp32",)),
    "torch-packed": Format(("ternary",), deployed=("ternary",), deployed_on=("cpu",)),  # GPU: dense cache
    "torch-w2": Format(("ternary",), deployed=("ternary",), deployed_on=("cuda",)),  # CPU: reference kernel
    "hf-bitnet": Format(("ternary",), deployed=("ternary",), deployed_on=("cuda",)),
    "gguf-tq2_0": Format(("ternary",), {"ternary_type": "tq2_0", "embed_type": "f16"}, True, deployed=("ternary",)),
    "gguf-tq2_0-q8": Format(("ternary",), {"ternary_type": "tq2_0", "embed_type": "q8_0"}, True, deployed=("ternary",)),
    "gguf-tq1_0": Format(("ternary",), {"ternary_type": "tq1_0", "embed_type": "f16"}, True, deployed=("ternary",)),
    "gguf-f32": Format(("fp32",), {"embed_type": "f32", "linear_type": "f32"}, True, deployed=("fp32",)),
    "gguf-f16": Format(("fp32",), {"embed_type": "f16", "linear_type": "f16"}, True, deployed=("fp32",)),
    "gguf-q8_0": Format(("fp32",), {"embed_type": "q8_0", "linear_type": "q8_0"}, True, deployed=("fp32",)),
}  # fmt: skip
# bench: settings every worker receives
SPEC_KEYS = ("prompt_tokens", "new_tokens", "warmup", "repeats", "budget_s", "packed_mode", "seed", "threads")
COLUMNS = [
    "device",
    "variant",
    "format",
    ROLE_COLUMN,
    "batch",
    "threads",
    "n_params",
    "weight_mb",
    "load_rss_mb",
    "rss_mb",
    "peak_rss_mb",
    "base_rss_mb",
    "gpu_load_mb",
    "gpu_peak_mb",
    "prefill_ms",
    "ms_per_token",
    "ms_per_token_iqr",
    "tokens_per_s",
    "prompt_tokens",
    "new_tokens",
    "repeats",
    "decode",
]


def row_role(fmt: str, variant: str, device: str) -> str:
    """``deployed`` or ``baseline`` (module docstring); only deployed rows may decide a claim."""
    f = FORMATS[fmt]
    return "deployed" if variant in f.deployed and device in f.deployed_on else "baseline"


def bench_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ``bench:`` config section over config.yaml's, with ``threads`` resolved to a number."""
    out = resolve(config)["bench"]
    unknown = set(out["formats"]) - set(FORMATS)
    if unknown:
        raise UserError(f"bench.formats: unknown {sorted(unknown)} (choose from {list(FORMATS)})")
    out["threads"] = resolve_threads(out["threads"])
    return out


def resolve_threads(threads: int | None) -> int:
    """null threads = every core this job may use (its CPU affinity: a SLURM/cgroup allocation)."""
    if threads:
        return int(threads)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def make_random_twins(model_cfg: dict[str, Any], out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Random-weight ternary and fp32 twins of ``model_cfg`` under ``out_dir/{ternary,fp32}``."""
    from ternarylm.model import ModelConfig, build_model, save_model

    dirs = []
    for variant in ("ternary", "fp32"):
        d = Path(out_dir) / variant
        cfg = ModelConfig.from_dict({**model_cfg, "linear": variant}).to_dict()
        if (d / "model.safetensors").exists() and read_json(d / "config.json").get("model") == cfg:
            log.info("reusing random %s twin in %s", variant, d)
        else:
            model = build_model(cfg, seed=seed)
            save_model(model, d, {"variant": variant, "seed": seed, "random_weights": True})
            log.info("built random %s twin (%.1fM params) in %s", variant, model.num_params() / 1e6, d)
        dirs.append(d)
    return dirs


# --- planning ---------------------------------------------------------------------------------------


def plan(
    variant: str, settings: dict[str, Any], device: str, have_llama: bool, have_hf: bool = True
) -> list[tuple[str, list[int]]]:
    """(format, batch sizes) to measure for one twin, in settings order."""
    out = []
    for fmt in settings["formats"]:
        f = FORMATS[fmt]
        if variant not in f.variants or (f.cpu_only and device != "cpu"):
            continue
        if (fmt.startswith("gguf") and not have_llama) or (fmt == "hf-bitnet" and not have_hf):
            continue
        out.append((fmt, [1] if f.batch1_only else list(settings["batch_sizes"])))
    return out


def _export(fmt: str, model_dir: Path, tmp: Path, variant: str, tokenizer) -> Path:
    """The file a worker loads for ``fmt`` (the model dir itself for unexported torch forms)."""
    if fmt in ("torch-packed", "torch-w2"):
        import torch

        from ternarylm.model import load_model
        from ternarylm.packed import save_packed

        path = tmp / f"{variant}.{fmt}.safetensors"
        with torch.no_grad():  # torch-w2 keeps the trained forward's fp32 embedding, norms and head
            save_packed(load_model(model_dir), path, fp16=fmt == "torch-packed")
        return path
    if fmt == "hf-bitnet":
        from ternarylm.hf_export import export_hf

        path = tmp / f"{variant}.hf-bitnet"
        export_hf(model_dir, tokenizer, path, "bitnet", val_tokens=None)
        return path
    if fmt.startswith("gguf"):
        from ternarylm.export import export_gguf

        path = tmp / f"{variant}.{fmt}.gguf"
        export_gguf(model_dir, path, tokenizer, **FORMATS[fmt].gguf)
        return path
    return model_dir


def run_worker(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Measure one format in a fresh interpreter (ternarylm/bench_worker.py); returns its rows."""
    cmd = [sys.executable, "-m", "ternarylm.bench_worker"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(spec["threads"])}
    proc = subprocess.run(cmd, input=json.dumps(spec), capture_output=True, text=True, env=env)
    if proc.stderr.strip():
        log.debug("%s worker stderr:\n%s", spec["format"], proc.stderr.strip())
    if proc.returncode != 0:
        raise RuntimeError(
            f"bench worker for {spec['variant']} {spec['format']} failed:\n{proc.stderr[-3000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _bench_model(
    model_dir: Path, settings, device: str, tokenizer, tmp: Path, have_llama: bool, have_hf: bool
) -> list[dict]:
    mcfg = read_json(model_dir / "config.json")["model"]
    variant = mcfg["linear"]
    n_params = _count_params(model_dir)
    rows = []
    for fmt, batches in plan(variant, settings, device, have_llama, have_hf):
        path = _export(fmt, model_dir, tmp, variant, tokenizer)
        spec = {k: settings[k] for k in SPEC_KEYS} | {
            "path": str(path),
            "variant": variant,
            "format": fmt,
            "role": row_role(fmt, variant, device),
            "device": device,
            "batches": batches,
            "vocab_size": mcfg["vocab_size"],
            "n_params": n_params,
        }
        t0 = time.perf_counter()
        new = run_worker(spec)
        for r in new:
            log.info(
                "%-7s %-14s batch %2d: %8.2f MB  %8.3f ms/token  peak RSS %7.1f MB  (%.0fs)",
                variant, fmt, r["batch"], r["weight_mb"], r["ms_per_token"], r["peak_rss_mb"],
                time.perf_counter() - t0,
            )  # fmt: skip
        rows.extend(new)
        if path.is_dir() and path != model_dir:
            shutil.rmtree(path)
        elif path != model_dir:
            path.unlink()
    return rows


# --- environment ------------------------------------------------------------------------------------


def environment(device: str, threads: int) -> dict[str, Any]:
    """CPU/GPU model, thread count and library versions of this machine."""
    import numpy
    import torch

    env: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": device,
        "threads": threads,
        "logical_cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "loadavg_start": os.getloadavg(),
    }
    from importlib.metadata import PackageNotFoundError, version

    for key, dist in (("gguf", "gguf"), ("llama_cpp", "llama-cpp-python"), ("tokenizers", "tokenizers")):
        try:
            env[key] = version(dist)
        except PackageNotFoundError:
            env[key] = None
    try:
        import llama_cpp

        env["llama_cpp_system_info"] = llama_cpp.llama_print_system_info().decode().strip()
    except ImportError:
        pass
    if device == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --- stage ------------------------------------------------------------------------------------------


def run_bench(
    model_dirs: list[Path],
    out_csv: str | Path,
    settings: dict[str, Any],
    device: str = "cpu",
    tokenizer: str | Path | None = None,
    env_out: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Export, measure and write ``out_csv`` (+ env.json beside it); returns the rows."""
    out_csv = Path(out_csv)
    env_out = Path(env_out) if env_out else out_csv.with_name("env.json")
    env = environment(device, settings["threads"])
    if env["loadavg_start"][0] > 2.5:
        log.warning("1-min load average %.2f: latencies will be inflated", env["loadavg_start"][0])
    skipped: dict[str, str] = {}  # format -> why it was not measured, in words, for the report pages
    gguf = [f for f in settings["formats"] if f.startswith("gguf")]
    try:
        import llama_cpp  # noqa: F401

        have_llama = device == "cpu"
        if not have_llama:
            skipped |= dict.fromkeys(gguf, f"llama-cpp-python runs GGUF on the CPU only, not on {device}")
    except ImportError:
        have_llama = False
        log.warning("llama-cpp-python not installed: skipping the gguf formats")
        skipped |= dict.fromkeys(
            gguf, 'not measured: llama-cpp-python is not installed (pip install -e ".[deploy]" adds it)'
        )

    have_hf = have_transformers_bitnet()
    if not have_hf and "hf-bitnet" in settings["formats"]:
        log.warning("transformers/accelerate not installed: skipping hf-bitnet (pip install -e '.[eval]')")
    rows: list[dict[str, Any]] = []
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_csv.parent, prefix=".bench-") as tmp:
        for model_dir in model_dirs:
            rows += _bench_model(Path(model_dir), settings, device, tokenizer, Path(tmp), have_llama, have_hf)
    env["loadavg_end"] = os.getloadavg()
    env["settings"] = settings
    env["skipped_formats"] = skipped
    env["models"] = [str(d) for d in model_dirs]
    # the workers' thread count (this process never sets torch's)
    env["provenance"] = provenance(device=device, threads=settings["threads"])
    write_csv(out_csv, rows, COLUMNS)
    write_json(env_out, env)
    log.info("wrote %s (%d rows) and %s", out_csv, len(rows), env_out)
    return rows


def have_transformers_bitnet() -> bool:
    """transformers' bitnet quantizer loads offline-packed weights through accelerate."""
    from importlib.util import find_spec

    return find_spec("transformers") is not None and find_spec("accelerate") is not None


def _count_params(model_dir: Path) -> int:
    from safetensors import safe_open

    weights = model_dir / "model.safetensors"
    if not weights.exists():
        raise UserError(f"missing model weights: {weights}")
    with safe_open(str(weights), "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def markdown_table(csv_path: str | Path, batch: int | None = None) -> str:
    """results.csv as a Markdown table (optionally one batch size only)."""
    import csv

    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if batch is None or int(r["batch"]) == batch]
    cols = [
        "variant",
        "format",
        ROLE_COLUMN,
        "batch",
        "weight_mb",
        "load_rss_mb",
        "peak_rss_mb",
        "prefill_ms",
        "ms_per_token",
        "ms_per_token_iqr",
        "tokens_per_s",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--models", nargs="+", type=Path, help="model dirs (ternary and/or fp32 twin)")
    p.add_argument(
        "--make-random", type=Path, metavar="DIR", help="build random twins of the config model here"
    )
    p.add_argument(
        "--tokenizer", type=Path, help="tokenizer.json for the GGUF vocab (default: placeholder vocab)"
    )
    p.add_argument("--out", required=True, type=Path, help="results.csv (env.json is written beside it)")
    p.add_argument(
        "--threads", type=int, help="CPU threads (default: config bench.threads; null = all usable cores)"
    )
    p.add_argument("--formats", nargs="+", choices=list(FORMATS), help="default: config bench.formats (all)")
    p.add_argument("--batch-sizes", nargs="+", type=int, help="default: config bench.batch_sizes")


def run(args: argparse.Namespace, config: dict) -> None:
    overrides = {k: getattr(args, k) for k in ("threads", "formats", "batch_sizes") if getattr(args, k)}
    config = {**(config or {}), "bench": {**((config or {}).get("bench") or {}), **overrides}}
    settings = bench_settings(config)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda but no CUDA device is visible")
    if bool(args.models) == bool(args.make_random):
        raise UserError("give exactly one of --models DIR... or --make-random DIR")
    if args.make_random:
        model_dirs = make_random_twins(resolve(config)["model"], args.make_random, settings["seed"])
    else:
        model_dirs = args.models
    if args.tokenizer is not None and not args.tokenizer.exists():
        raise UserError(f"missing tokenizer: {args.tokenizer}")
    for model_dir in args.models or []:  # trained twins: their weights and tokenizer as recorded
        check_model(model_dir, args.tokenizer)
    run_bench(model_dirs, args.out, settings, args.device, args.tokenizer)
