"""Training throughput: ternary and fp32 twins, naive reference vs eager vs compiled, side by side.

    python benchmarks/train_throughput.py --device cuda --out DIR          # paper config (GPU)
    python benchmarks/train_throughput.py --device cpu --small --out DIR   # small config (CPU)

Needs only torch and this package (no Snakemake). Each configuration runs in its own Python
process (clean peak-memory numbers, no compile caches shared in memory, one failure does not
stop the rest) and times the real training step of ``ternarylm.train`` — forward, backward,
gradient clipping, optimizer and scheduler step — on random token batches already on the
device. Configurations (``--configs`` picks a subset):

    ternary/naive     ternarylm.reference.RefBitLinear (custom autograd.Function, the seed's
                      approach), fp32, eager, full-fp32 matmuls (no TF32)
    ternary/eager     BitLinear (STE as tensor arithmetic), precision auto, eager
    ternary/compiled  the same, torch.compile-d
    fp32/eager        the fp32 twin (nn.Linear), precision auto, eager
    fp32/compiled     the same, torch.compile-d

"precision auto" is ternarylm.train's rule: bf16 autocast on CUDA, fp32 on CPU. Everything but
the layer, the precision and compilation is shared (model, optimizer, scheduler, step code), so
the ratios isolate what the fast path changes.

Writes DIR/results.csv (one row per configuration) and DIR/env.json (device, versions, command).
Columns: tokens_per_s = batch*seq*timed_steps / wall time of the timed steps (synchronised at
both ends only); compile_s = wall time of the warm-up steps (includes torch.compile);
flops_per_token = 6*N + 12*L*T*d, N = parameters of every matmul (all parameters but the
token embedding), the second term the attention score and value matmuls at full (not causal)
T x T, forward+backward (nanoGPT/PaLM convention); mfu = tokens_per_s * flops_per_token / peak,
peak = dense bf16 tensor-core peak of the GPU (H100 SXM 989 TFLOP/s; ``--peak-tflops`` to
override; blank on CPU), so fp32 rows are also measured against the bf16 peak; peak_mem_mb =
torch.cuda.max_memory_allocated during the timed steps on CUDA, the worker process's peak RSS
on CPU (includes the torch runtime and, for compiled rows, the compiler); load1_end = the 1-min
load average when the row's timing ended (CPU only: other processes make CPU timings unreliable).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

CONFIGS = ("ternary/naive", "ternary/eager", "ternary/compiled", "fp32/eager", "fp32/compiled")

# The --small model: every linear input a multiple of 256 like the paper model.
SMALL_MODEL = {"vocab_size": 8192, "d_model": 256, "n_layers": 4, "n_heads": 4, "ffn_hidden": 768}

# Dense bf16 tensor-core peak (TFLOP/s), matched against torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 70.0),
    ("L4", 121.0),
)

FIELDS = [
    "config",
    "variant",
    "impl",
    "layer",
    "precision",
    "compiled",
    "device",
    "batch_size",
    "seq_len",
    "tokens_per_step",
    "params",
    "matmul_params",
    "flops_per_token",
    "warmup_steps",
    "timed_steps",
    "compile_s",
    "step_ms",
    "tokens_per_s",
    "achieved_tflops",
    "mfu",
    "peak_mem_mb",
    "mem_kind",
    "loss_first",
    "loss_last",
    "speedup_vs_naive",
    "speedup_vs_eager",
    "load1_end",
    "status",
    "error",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda | cpu | auto (default cuda)")
    p.add_argument("--out", type=Path, help="output folder for results.csv and env.json")
    p.add_argument("--small", action="store_true", help=f"small model for CPU: {SMALL_MODEL}")
    p.add_argument("--config", type=Path, default=REPO / "config.yaml", help="model/train sections from here")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list from {', '.join(CONFIGS)}")
    p.add_argument(
        "--batch-size",
        type=int,
        help="sequences per step (default: config's train.batch_size; 8 with --small)",
    )
    p.add_argument("--warmup", type=int, help="untimed steps first (default 10; 3 with --small)")
    p.add_argument("--steps", type=int, help="timed steps (default 50; 10 with --small)")
    p.add_argument(
        "--precision", default="auto", help="auto | bf16 | fp32 for the non-naive rows (default auto)"
    )
    p.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch CPU threads (default: all cores)"
    )
    p.add_argument("--peak-tflops", type=float, help="peak TFLOP/s for MFU (default: bf16 peak of the GPU)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per configuration before giving up")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: JSON spec of one configuration
    args = p.parse_args(argv)
    if args.worker is None and args.out is None:
        p.error("--out is required")
    unknown = set(args.configs.split(",")) - set(CONFIGS)
    if unknown:
        p.error(f"unknown --configs {sorted(unknown)}; choose from {', '.join(CONFIGS)}")
    return args


def load_sections(config_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model, train) sections of the pipeline config; ModelConfig defaults if the file is missing."""
    if not config_path.exists():
        return {}, {}
    import yaml

    cfg = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    return dict(cfg.get("model") or {}), dict(cfg.get("train") or {})


def flops_per_token(matmul_params: int, n_layers: int, seq_len: int, d_model: int) -> int:
    """Training FLOPs per token: 6*N (forward + backward matmuls) + 12*L*T*d (attention)."""
    return 6 * matmul_params + 12 * n_layers * seq_len * d_model


def peak_tflops(device_name: str) -> float | None:
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops
    return None


# --------------------------------------------------------------------------------------------
# worker: one configuration in this process


def build(spec: dict[str, Any]):
    """(model, cfg, device, precision, step function) of one configuration, ready to time."""
    import torch

    from ternarylm import train as T
    from ternarylm.model import ModelConfig, build_model
    from ternarylm.reference import count_reference_layers, swap_to_reference
    from ternarylm.trainkit import resolve_device

    torch.set_num_threads(spec["threads"])
    variant, impl = spec["config"].split("/")
    naive = impl == "naive"
    precision = "fp32" if naive else spec["precision"]
    device = resolve_device(spec["device"])
    if device.type == "cuda":
        # as ternarylm.train.run_pretrain: TF32 on for the fast path; the seed ran true fp32 matmuls
        torch.backends.cuda.matmul.allow_tf32 = not naive
        torch.backends.cudnn.allow_tf32 = not naive

    cfg = ModelConfig.from_dict({**spec["model"], "linear": variant})
    train_cfg = {**spec["train"], "precision": precision, "compile": impl == "compiled"}
    model = build_model(cfg, seed=0)
    if naive:
        swap_to_reference(model)
        assert count_reference_layers(model) > 0
    model = model.to(device).train()
    optimizer = T.make_optimizer(model, train_cfg, device)
    scheduler = T.make_scheduler(optimizer, train_cfg, spec["warmup"] + spec["steps"])
    step_model = T.maybe_compile(model, impl == "compiled", device)
    ctx = T.autocast_context(device, precision)
    gen = torch.Generator().manual_seed(0)
    shape = (spec["batch_size"], cfg.seq_len + 1)
    batches = [torch.randint(0, cfg.vocab_size, shape, generator=gen).to(device) for _ in range(4)]

    def step(i: int) -> torch.Tensor:
        b = batches[i % len(batches)]
        return T.train_step(step_model, b[:, :-1], b[:, 1:], optimizer, scheduler, train_cfg, ctx)

    return model, cfg, device, precision, step


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Build, warm up and time one configuration; return its CSV row."""
    import torch

    model, cfg, device, precision, step = build(spec)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    t0 = time.perf_counter()
    loss = step(0)
    loss_first = float(loss)
    for i in range(1, spec["warmup"]):
        loss = step(i)
    sync()
    compile_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i in range(spec["steps"]):
        loss = step(i)
    sync()
    elapsed = time.perf_counter() - t0
    if device.type == "cuda":
        peak_mem, mem_kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    else:
        peak_mem, mem_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_peak_rss"
    timing = {"compile_s": compile_s, "elapsed": elapsed, "peak_mem": peak_mem, "mem_kind": mem_kind}
    return result_row(spec, model, cfg, device, precision, timing, loss_first, float(loss))


def result_row(spec, model, cfg, device, precision, timing, loss_first, loss_last) -> dict[str, Any]:
    variant, impl = spec["config"].split("/")
    n_params = model.num_params()
    matmul_params = n_params - model.tok_emb.weight.numel()
    seq, bsz = cfg.seq_len, spec["batch_size"]
    fpt = flops_per_token(matmul_params, cfg.n_layers, seq, cfg.d_model)
    tps = bsz * seq * spec["steps"] / timing["elapsed"]
    achieved = tps * fpt / 1e12
    peak = spec["peak_tflops"]
    return {
        "config": spec["config"],
        "variant": variant,
        "impl": impl,
        "layer": type(model.layers[0].attn.q).__name__,
        "precision": precision if precision != "auto" else ("bf16" if device.type == "cuda" else "fp32"),
        "compiled": impl == "compiled",
        "device": device.type,
        "batch_size": bsz,
        "seq_len": seq,
        "tokens_per_step": bsz * seq,
        "params": n_params,
        "matmul_params": matmul_params,
        "flops_per_token": fpt,
        "warmup_steps": spec["warmup"],
        "timed_steps": spec["steps"],
        "compile_s": round(timing["compile_s"], 3),
        "step_ms": round(1000 * timing["elapsed"] / spec["steps"], 3),
        "tokens_per_s": round(tps, 1),
        "achieved_tflops": round(achieved, 4),
        "mfu": round(achieved / peak, 4) if peak else "",
        "peak_mem_mb": round(timing["peak_mem"], 1),
        "mem_kind": timing["mem_kind"],
        "loss_first": round(loss_first, 4),
        "loss_last": round(loss_last, 4),
        "load1_end": _loadavg().split()[0] if device.type == "cpu" and _loadavg() else "",
        "status": "ok",
        "error": "",
    }


# --------------------------------------------------------------------------------------------
# driver: one worker process per configuration, then CSV + env.json


def env_info(args: argparse.Namespace, device_name: str, peak: float | None) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": args.device,
        "device_name": device_name,
        "peak_tflops_for_mfu": peak,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": args.threads,
        "loadavg_start": _loadavg(),
    }
    with contextlib.suppress(ImportError):
        import triton

        info["triton"] = triton.__version__
    from ternarylm.provenance import git_state  # the package's one git call (never raises)

    info["git_commit"], info["git_dirty"] = git_state()
    if torch.cuda.is_available() and args.device != "cpu":
        props = torch.cuda.get_device_properties(0)
        info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        info["gpu_capability"] = f"{props.major}.{props.minor}"
        with contextlib.suppress(Exception):
            info["nvidia_driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _loadavg() -> str | None:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return None


def spawn(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; a failure becomes a row with status=error."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "row.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            json.dumps({**spec, "result": str(result)}),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"config": spec["config"], "status": "error", "error": f"timeout after {timeout:.0f} s"}
        if proc.returncode == 0 and result.exists():
            return json.loads(result.read_text())
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        return {
            "config": spec["config"],
            "status": "error",
            "error": tail[-1] if tail else f"exit {proc.returncode}",
        }


def add_ratios(rows: list[dict[str, Any]]) -> None:
    tps = {r["config"]: r.get("tokens_per_s") for r in rows if r.get("status") == "ok"}
    for r in rows:
        if r.get("status") != "ok":
            continue
        naive, eager = tps.get("ternary/naive"), tps.get(f"{r['variant']}/eager")
        r["speedup_vs_naive"] = round(r["tokens_per_s"] / naive, 3) if naive else ""
        r["speedup_vs_eager"] = round(r["tokens_per_s"] / eager, 3) if eager else ""


def markdown_table(rows: list[dict[str, Any]]) -> str:
    cols = [
        "config", "precision", "tokens_per_s", "step_ms", "compile_s", "mfu", "peak_mem_mb",
        "loss_last", "speedup_vs_naive", "speedup_vs_eager",
    ]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        if r.get("status") == "ok":
            lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
        else:
            lines.append(f"| {r['config']} | error: {r.get('error', '')} |")
    return "\n".join(lines)


def print_projection(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """The paper preset's per-stage time budget (ternarylm.budget) at the best measured ternary rate."""
    from ternarylm.budget import THROUGHPUTS, budget_markdown
    from ternarylm.io import load_config

    ok = [r for r in rows if r.get("status") == "ok" and r.get("variant") == "ternary"]
    if not ok or not args.config.exists():
        return
    best = max(ok, key=lambda r: r["tokens_per_s"])
    note = " -- measured on the --small model, NOT the paper model" if args.small else ""
    print(f"\nTime budget of {args.config} at {best['config']}'s {best['tokens_per_s']:.0f} tokens/s{note}:")
    print(budget_markdown(load_config(args.config), {"measured": best["tokens_per_s"], **THROUGHPUTS}))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        spec = json.loads(args.worker)
        row = run_one(spec)
        Path(spec["result"]).write_text(json.dumps(row))
        return 0

    import torch

    from ternarylm.io import write_csv, write_json

    if args.device in ("cuda", "auto") and torch.cuda.is_available():
        device_name = torch.cuda.get_device_name(0)
    elif args.device == "cuda":
        print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    else:
        args.device = "cpu"
        device_name = _cpu_model()
    peak = args.peak_tflops or (peak_tflops(device_name) if args.device != "cpu" else None)

    model_sec, train_sec = load_sections(args.config)
    if args.small:
        model_sec.update(SMALL_MODEL)
    batch_size = args.batch_size or (8 if args.small else int(train_sec.get("batch_size", 64)))
    warmup = args.warmup if args.warmup is not None else (3 if args.small else 10)
    steps = args.steps or (10 if args.small else 50)
    base = {
        "device": args.device,
        "model": model_sec,
        "train": train_sec,
        "batch_size": batch_size,
        "warmup": max(1, warmup),
        "steps": steps,
        "precision": args.precision,
        "threads": args.threads,
        "peak_tflops": peak,
    }
    env = env_info(args, device_name, peak)
    rows = []
    for name in args.configs.split(","):
        print(f"[train_throughput] {name} ...", file=sys.stderr, flush=True)
        row = spawn({**base, "config": name}, args.timeout)
        print(
            f"[train_throughput] {name}: {row.get('tokens_per_s', row.get('error'))} tokens/s",
            file=sys.stderr,
            flush=True,
        )
        rows.append(row)
    add_ratios(rows)
    env["loadavg_end"] = _loadavg()
    env["settings"] = {k: v for k, v in base.items() if k not in ("train",)}
    env["train_config"] = train_sec
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "results.csv", rows, FIELDS)
    write_json(args.out / "env.json", env)
    print(markdown_table(rows))
    print_projection(rows, args)
    return 0 if all(r.get("status") == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
