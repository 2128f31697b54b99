"""`ternarylm bench`: weight size, peak memory and decode latency of every deployed form (T6).

Rows are variant x format x batch:

  format        variant   what runs
  torch-fp32    both      PyTorch eager fp32 (ternary: the QAT checkpoint as trained, fake-quant)
  torch-nocache ternary   the QAT checkpoint in fp32 *without* a KV cache: every step re-runs the
                          whole sequence (what the seed notebook measured); batch 1 only
  torch-bf16    both      PyTorch eager bf16
  torch-int8    fp32      ``torch.ao`` dynamic int8 quantization of every nn.Linear (the INT8 baseline)
  torch-packed  ternary   packed 2-bit codes, int8 x int8 matmul (ternarylm.packed)
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
fewer than ``min(repeats, 3)``); tokens_per_s = batch * 1000 / ms_per_token.
Each format is measured in a fresh subprocess so peak memory belongs to that format alone.

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
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ternarylm.io import UserError, read_json, write_csv, write_json

log = logging.getLogger("ternarylm.bench")

FORMATS: dict[str, tuple[str, ...]] = {
    "torch-fp32": ("ternary", "fp32"),
    "torch-nocache": ("ternary",),
    "torch-bf16": ("ternary", "fp32"),
    "torch-int8": ("fp32",),
    "torch-packed": ("ternary",),
    "gguf-tq2_0": ("ternary",),
    "gguf-tq2_0-q8": ("ternary",),
    "gguf-tq1_0": ("ternary",),
    "gguf-f32": ("fp32",),
    "gguf-f16": ("fp32",),
    "gguf-q8_0": ("fp32",),
}
# gguf format -> export_gguf keyword arguments
GGUF_EXPORT: dict[str, dict[str, str]] = {
    "gguf-tq2_0": {"ternary_type": "tq2_0", "embed_type": "f16"},
    "gguf-tq2_0-q8": {"ternary_type": "tq2_0", "embed_type": "q8_0"},
    "gguf-tq1_0": {"ternary_type": "tq1_0", "embed_type": "f16"},
    "gguf-f32": {"embed_type": "f32", "linear_type": "f32"},
    "gguf-f16": {"embed_type": "f16", "linear_type": "f16"},
    "gguf-q8_0": {"embed_type": "q8_0", "linear_type": "q8_0"},
}
COLUMNS = [
    "device",
    "variant",
    "format",
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
]
# defaults of the `bench:` config keys (config.yaml may set any of them)
DEFAULTS: dict[str, Any] = {
    "new_tokens": 64,
    "prompt_tokens": 16,
    "batch_sizes": [1, 8],
    "threads": None,
    "warmup": 1,
    "repeats": 3,
    "budget_s": 30.0,
    "formats": list(FORMATS),
    "packed_mode": "int8",
    "seed": 0,
}


def bench_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ``bench:`` config section with defaults filled in."""
    section = (config or {}).get("bench") or {}
    out = {k: section.get(k, v) for k, v in DEFAULTS.items()}
    unknown = set(out["formats"]) - set(FORMATS)
    if unknown:
        raise UserError(f"bench.formats: unknown {sorted(unknown)} (choose from {list(FORMATS)})")
    return out


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


# --- measurement (runs in a fresh subprocess per format) -------------------------------------------


def _rss_mb() -> float:
    """Peak resident set size of this process so far, MB.

    Linux: VmHWM, which starts afresh at exec (ru_maxrss would inherit the parent's peak).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def _current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return float("nan")


def load_model_lean(model_dir: str | Path):
    """Like ``model.load_model`` but never holds two copies of the weights (built on ``meta``)."""
    import torch
    from safetensors.torch import load_file

    from ternarylm.model import ModelConfig, TransformerLM, rope_tables

    model_dir = Path(model_dir)
    cfg = ModelConfig.from_dict(read_json(model_dir / "config.json")["model"])
    with torch.device("meta"):
        model = TransformerLM(cfg)
    model.load_state_dict(load_file(str(model_dir / "model.safetensors")), assign=True)
    model.rope_cos, model.rope_sin = rope_tables(cfg.head_dim, cfg.seq_len, cfg.rope_base)
    return model.eval()


def _tensor_mb(obj: Any) -> float:
    """Bytes of a module's state (quantized modules included) as torch.save writes them, MB."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj.state_dict(), buf)
    return buf.tell() / 1e6


MIN_REPEATS = 3


def _timed(fn, warmup: int, repeats: int, budget_s: float) -> tuple[float, list[float], int]:
    """Median prefill s, every timed run's decode s, and the number of timed runs of
    ``fn() -> (prefill, decode)``.

    At least one warm-up run; a slow format gets fewer timed runs so that they take about
    ``budget_s`` seconds, but never fewer than ``min(repeats, MIN_REPEATS)``.
    """
    t0 = time.perf_counter()
    for _ in range(max(warmup, 1)):
        fn()
    per_run = (time.perf_counter() - t0) / max(warmup, 1)
    n = max(min(repeats, MIN_REPEATS), 1, min(repeats, int(budget_s / max(per_run, 1e-9))))
    runs = [fn() for _ in range(n)]
    return statistics.median(r[0] for r in runs), [r[1] for r in runs], n


def iqr(values: list[float]) -> float:
    """Interquartile range (inclusive quartiles; 0 for a single value)."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q3 - q1


def _measure_torch(spec: dict[str, Any]) -> list[dict[str, Any]]:
    import torch

    from ternarylm.packed import load_packed

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    base = _rss_mb()
    fmt = spec["format"]
    if fmt == "torch-packed":
        model = load_packed(spec["path"], mode=spec["packed_mode"])
        weight_mb = os.path.getsize(spec["path"]) / 1e6
    else:
        model = load_model_lean(spec["path"])
        if fmt == "torch-bf16":
            model = model.to(torch.bfloat16)
        elif fmt == "torch-int8":
            import warnings

            from torch.ao.quantization import quantize_dynamic

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        weight_mb = _tensor_mb(model)
    model = model.to(device).eval()
    load_rss = _current_rss_mb()
    cuda = device.type == "cuda"
    gpu_load = torch.cuda.memory_allocated(device) / 1e6 if cuda else None
    n_params = int(spec["n_params"])
    gen = torch.Generator().manual_seed(spec["seed"])
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows = []
    for batch in spec["batches"]:
        prompt = torch.randint(5, spec["vocab_size"], (batch, spec["prompt_tokens"]), generator=gen).to(
            device
        )

        @torch.inference_mode()
        def once(prompt=prompt):
            t0 = time.perf_counter()
            logits, cache = model.forward_cached(prompt)
            sync()
            t1 = time.perf_counter()
            for _ in range(spec["new_tokens"]):
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                logits, cache = model.forward_cached(nxt, cache)
            sync()
            return t1 - t0, time.perf_counter() - t1

        @torch.inference_mode()
        def once_nocache(prompt=prompt):
            t0 = time.perf_counter()
            ids = prompt
            logits = model(ids)
            sync()
            t1 = time.perf_counter()
            for _ in range(spec["new_tokens"]):
                ids = torch.cat((ids, logits[:, -1].argmax(-1, keepdim=True)), dim=1)
                logits = model(ids)  # the whole sequence again, every step
            sync()
            return t1 - t0, time.perf_counter() - t1

        fn = once_nocache if fmt == "torch-nocache" else once
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        prefill, decode, n = _timed(fn, spec["warmup"], spec["repeats"], spec["budget_s"])
        row = _row(spec, batch, n_params, weight_mb, base, load_rss, prefill, decode, n)
        if cuda:
            row["gpu_load_mb"] = round(gpu_load, 1)
            row["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 1e6, 1)
        rows.append(row)
    return rows


def _measure_gguf(spec: dict[str, Any]) -> list[dict[str, Any]]:
    import numpy as np

    from ternarylm.generate import LlamaCpp

    base = _rss_mb()
    weight_mb = os.path.getsize(spec["path"]) / 1e6
    rng = np.random.default_rng(spec["seed"])
    rows = []
    for batch in spec["batches"]:
        prompts = rng.integers(5, spec["vocab_size"], (batch, spec["prompt_tokens"])).tolist()
        n_ctx = spec["prompt_tokens"] + spec["new_tokens"] + 1
        with LlamaCpp(spec["path"], n_ctx=n_ctx, n_seq=batch, threads=spec["threads"]) as llm:
            load_rss = _current_rss_mb()

            def once(llm=llm, prompts=prompts):
                llm.reset()
                t0 = time.perf_counter()
                logits = llm.decode(prompts)
                t1 = time.perf_counter()
                for _ in range(spec["new_tokens"]):
                    logits = llm.decode([[int(t)] for t in logits.argmax(-1)])
                return t1 - t0, time.perf_counter() - t1

            prefill, decode, n = _timed(once, spec["warmup"], spec["repeats"], spec["budget_s"])
        rows.append(_row(spec, batch, int(spec["n_params"]), weight_mb, base, load_rss, prefill, decode, n))
    return rows


def _row(spec, batch, n_params, weight_mb, base, load_rss, prefill, decodes, repeats) -> dict[str, Any]:
    per_token = [1000 * d / spec["new_tokens"] for d in decodes]
    ms = statistics.median(per_token)
    return {
        "device": spec["device"],
        "variant": spec["variant"],
        "format": spec["format"],
        "batch": batch,
        "threads": spec["threads"] or "",
        "n_params": n_params,
        "weight_mb": round(weight_mb, 2),
        "load_rss_mb": round(load_rss, 1),
        "rss_mb": round(_current_rss_mb(), 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "base_rss_mb": round(base, 1),
        "gpu_load_mb": "",  # CUDA only: torch.cuda.memory_allocated after loading
        "gpu_peak_mb": "",  # CUDA only: torch.cuda.max_memory_allocated while decoding that batch
        "prefill_ms": round(1000 * prefill, 3),
        "ms_per_token": round(ms, 3),
        "ms_per_token_iqr": round(iqr(per_token), 3),
        "tokens_per_s": round(batch * 1000 / ms, 2),
        "prompt_tokens": spec["prompt_tokens"],
        "new_tokens": spec["new_tokens"],
        "repeats": repeats,
    }


def _worker() -> None:
    """Subprocess entry: a JSON spec on stdin, a JSON list of rows as the last stdout line."""
    spec = json.loads(sys.stdin.read())
    if spec["format"].startswith("gguf"):
        import llama_cpp  # noqa: F401  (libraries count in the baseline, not in the model)
    else:
        import torch

        with torch.device("meta"):  # load_packed builds on meta; its first use imports ~80 MB of torch
            torch.empty(1)
    rows = (_measure_gguf if spec["format"].startswith("gguf") else _measure_torch)(spec)
    print(json.dumps(rows), flush=True)


def _run_worker(spec: dict[str, Any]) -> list[dict[str, Any]]:
    cmd = [sys.executable, "-c", "from ternarylm.bench import _worker; _worker()"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if spec["threads"]:
        env["OMP_NUM_THREADS"] = str(spec["threads"])
    proc = subprocess.run(cmd, input=json.dumps(spec), capture_output=True, text=True, env=env)
    if proc.stderr.strip():
        log.debug("%s worker stderr:\n%s", spec["format"], proc.stderr.strip())
    if proc.returncode != 0:
        raise RuntimeError(
            f"bench worker for {spec['variant']} {spec['format']} failed:\n{proc.stderr[-3000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- environment ------------------------------------------------------------------------------------


def environment(device: str, threads: int | None) -> dict[str, Any]:
    """CPU/GPU model, thread count and library versions of this machine."""
    import numpy
    import torch

    env: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": device,
        "threads": threads or torch.get_num_threads(),
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
    from ternarylm.export import export_gguf
    from ternarylm.packed import save_packed

    out_csv = Path(out_csv)
    env_out = Path(env_out) if env_out else out_csv.with_name("env.json")
    env = environment(device, settings["threads"])
    if env["loadavg_start"][0] > 2.5:
        log.warning("1-min load average %.2f: latencies will be inflated", env["loadavg_start"][0])
    try:
        import llama_cpp  # noqa: F401

        have_llama = device == "cpu"
    except ImportError:
        have_llama = False
        log.warning("llama-cpp-python not installed: skipping the gguf formats")

    rows: list[dict[str, Any]] = []
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_csv.parent, prefix=".bench-") as tmp:
        for model_dir in model_dirs:
            model_dir = Path(model_dir)
            mcfg = read_json(model_dir / "config.json")["model"]
            variant = mcfg.get("linear", "fp32")
            n_params = _count_params(model_dir)
            for fmt in settings["formats"]:
                if variant not in FORMATS[fmt]:
                    continue
                if fmt.startswith("gguf") and not have_llama:
                    continue
                if device != "cpu" and fmt == "torch-int8":
                    continue  # dynamic int8 quantization is CPU-only
                path = model_dir
                if fmt == "torch-packed":
                    import torch

                    from ternarylm.model import load_model

                    path = Path(tmp) / f"{variant}.packed.safetensors"
                    with torch.no_grad():
                        save_packed(load_model(model_dir), path, fp16=True)
                elif fmt.startswith("gguf"):
                    path = Path(tmp) / f"{variant}.{fmt}.gguf"
                    export_gguf(model_dir, path, tokenizer, **GGUF_EXPORT[fmt])
                batches = settings["batch_sizes"]
                if fmt == "torch-nocache" or (device != "cpu" and fmt.startswith("gguf")):
                    batches = [1]
                spec = {
                    "path": str(path),
                    "variant": variant,
                    "format": fmt,
                    "device": device,
                    "threads": settings["threads"],
                    "batches": batches,
                    "prompt_tokens": settings["prompt_tokens"],
                    "new_tokens": settings["new_tokens"],
                    "warmup": settings["warmup"],
                    "repeats": settings["repeats"],
                    "budget_s": settings["budget_s"],
                    "packed_mode": settings["packed_mode"],
                    "seed": settings["seed"],
                    "vocab_size": mcfg["vocab_size"],
                    "n_params": n_params,
                }
                t0 = time.perf_counter()
                new = _run_worker(spec)
                for r in new:
                    log.info(
                        "%-7s %-14s batch %2d: %8.2f MB  %8.3f ms/token  peak RSS %7.1f MB  (%.0fs)",
                        variant,
                        fmt,
                        r["batch"],
                        r["weight_mb"],
                        r["ms_per_token"],
                        r["peak_rss_mb"],
                        time.perf_counter() - t0,
                    )
                rows.extend(new)
                if path != model_dir:
                    path.unlink()
    env["loadavg_end"] = os.getloadavg()
    env["settings"] = settings
    env["models"] = [str(d) for d in model_dirs]
    write_csv(out_csv, rows, COLUMNS)
    write_json(env_out, env)
    log.info("wrote %s (%d rows) and %s", out_csv, len(rows), env_out)
    return rows


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
    p.add_argument("--threads", type=int, help="CPU threads (default: config bench.threads, else all)")
    p.add_argument("--formats", nargs="+", choices=list(FORMATS), help="default: config bench.formats (all)")
    p.add_argument("--batch-sizes", nargs="+", type=int, help="default: config bench.batch_sizes")


def run(args: argparse.Namespace, config: dict) -> None:
    settings = bench_settings(config)
    for key in ("threads", "formats", "batch_sizes"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda but no CUDA device is visible")
    if bool(args.models) == bool(args.make_random):
        raise UserError("give exactly one of --models DIR... or --make-random DIR")
    if args.make_random:
        model_dirs = make_random_twins((config or {}).get("model", {}), args.make_random, settings["seed"])
    else:
        model_dirs = args.models
    if args.tokenizer is not None and not args.tokenizer.exists():
        raise UserError(f"missing tokenizer: {args.tokenizer}")
    run_bench(model_dirs, args.out, settings, args.device, args.tokenizer)
