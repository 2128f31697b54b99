"""torch-w2 on a GPU: kernel correctness on CUDA, then the paper-size bench of every GPU row.

    python benchmarks/gpu/check_w2.py --out benchmarks/gpu/w2            # on a GPU (a few minutes)
    python benchmarks/gpu/check_w2.py --device cpu --tiny --out /tmp/w2  # CPU dry run (interpreter)

1. ``correctness.json``: the Triton kernels vs the pure-torch reference on the paper's shapes
   (768->768/2048/3072, 2048/3072->768, a vocab-sized one) at batch 1, 8, 32 and ragged ones (must be
   bitwise equal); a random paper-size ternary model through torch-w2 vs the trained forward (max /
   mean |dlogit|, top-1; the bitnet export's tolerance: 0.1 / 5e-3 / 99 %); greedy decoding with the
   CUDA-graph step (ternarylm.static_decode) equal to ``forward_cached``.
2. ``bench/results.csv`` + ``bench/env.json``: ``ternarylm bench`` on random paper-size twins with
   torch-fp32, torch-bf16, torch-packed, torch-w2 and hf-bitnet at batch 1 and 32.
3. ``summary.json``: the issue-25 targets read off that CSV (torch-w2 batch 1 <= 1 ms/token and <= the
   FP32 twin's; FP32 GPU peak / torch-w2 GPU peak >= 2.4), the device, and the provenance record.
   Random weights: speed and memory only, never accuracy.

Exit status 0 only if every correctness check passed. Nothing this writes on CPU (``--device cpu``)
is a GPU number: the summary says which device produced it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ternarylm.bench import bench_settings, make_random_twins, run_bench  # noqa: E402
from ternarylm.io import load_config, write_json  # noqa: E402
from ternarylm.provenance import provenance  # noqa: E402

SHAPES = [(768, 768), (768, 2048), (2048, 768), (768, 3072), (3072, 768), (768, 30522), (1001, 130)]
TINY_SHAPES = [(256, 256), (256, 512), (1001, 130)]
TINY_MODEL = {"d_model": 256, "n_layers": 2, "n_heads": 4, "ffn_hidden": 512, "vocab_size": 2000}
FORMATS = ["torch-fp32", "torch-bf16", "torch-packed", "torch-w2", "hf-bitnet"]


def check_kernels(device: str, shapes) -> list[dict]:
    from ternarylm.packed import pack_codes
    from ternarylm.w2 import quantize_rows, w2_matmul, w2_matmul_reference

    g = torch.Generator().manual_seed(0)
    out = []
    for k, n in shapes:
        for m in (1, 8, 32):
            codes = torch.randint(-1, 2, (n, k), generator=g, dtype=torch.int8)
            xq, scale = quantize_rows(torch.randn(m, k, generator=g))
            args = (xq.to(device), pack_codes(codes).to(device), k, (0.03 / scale).to(device))
            got, ref = w2_matmul(*args, kernel="triton"), w2_matmul_reference(*args)
            out.append({"m": m, "k": k, "n": n, "bitwise_equal": bool(torch.equal(got, ref))})
    return out


def check_model(device: str, model_cfg: dict) -> dict:
    from ternarylm.generate import generate_torch
    from ternarylm.model import build_model
    from ternarylm.static_decode import StaticDecoder
    from ternarylm.w2 import to_w2

    model = build_model({**model_cfg, "linear": "ternary", "dropout": 0.0}, seed=0).to(device).eval()
    ids = torch.randint(5, model.cfg.vocab_size, (2, 64), generator=torch.Generator().manual_seed(1))
    ids = ids.to(device)
    with torch.no_grad():
        ref = model(ids)
        to_w2(model, "triton")
        got = model(ids)
    diff = (got - ref).abs()
    res = {
        "max_abs_dlogit": diff.max().item(),
        "mean_abs_dlogit": diff.mean().item(),
        "top1_agreement": (got.argmax(-1) == ref.argmax(-1)).float().mean().item(),
    }
    res["logits_pass"] = res["max_abs_dlogit"] < 0.1 and res["mean_abs_dlogit"] < 5e-3
    res["logits_pass"] = res["logits_pass"] and res["top1_agreement"] >= 0.99
    prompt = ids[:, :8]
    want = generate_torch(model, prompt.tolist(), 24)
    dec = StaticDecoder(model, 2, 8 + 24 + 1, torch.float32)
    if device == "cuda":
        dec.prefill(prompt)
        dec.capture()
    toks = [dec.prefill(prompt).argmax(-1)] + [dec.step().argmax(-1) for _ in range(23)]
    res["graph_decode_equal"] = torch.stack(toks, 1).tolist() == want
    res["graph_captured"] = dec.graph is not None
    return res


def targets(csv_path: Path) -> dict:
    """The issue's targets, read off the bench CSV (batch 1); None where a row is missing."""
    with open(csv_path, newline="") as f:
        rows = {(r["variant"], r["format"], r["batch"]): r for r in csv.DictReader(f)}
    w2, fp32 = rows.get(("ternary", "torch-w2", "1")), rows.get(("fp32", "torch-fp32", "1"))
    if w2 is None or fp32 is None:
        return {"missing": "torch-w2 or fp32 torch-fp32 batch-1 row"}
    ms_w2, ms_fp = float(w2["ms_per_token"]), float(fp32["ms_per_token"])
    out = {"w2_ms_per_token": ms_w2, "fp32_ms_per_token": ms_fp, "w2_decode": w2.get("decode")}
    out["w2_le_1ms"], out["w2_le_fp32"] = ms_w2 <= 1.0, ms_w2 <= ms_fp
    if w2["gpu_peak_mb"] and fp32["gpu_peak_mb"]:
        ratio = float(fp32["gpu_peak_mb"]) / float(w2["gpu_peak_mb"])
        out |= {"gpu_peak_ratio_fp32_over_w2": ratio, "ratio_ge_2.4": ratio >= 2.4}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--tiny", action="store_true", help="small shapes and model (the CPU dry run)")
    p.add_argument("--skip-bench", action="store_true")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("check_w2: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    if args.device == "cpu":  # the kernels run in Triton's interpreter (set before they are defined)
        os.environ.setdefault("TRITON_INTERPRET", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    config = load_config(REPO / "config.yaml")
    model_cfg = {**config["model"], **(TINY_MODEL if args.tiny else {})}
    t0 = time.time()
    kernels = check_kernels(args.device, TINY_SHAPES if args.tiny else SHAPES)
    model = check_model(args.device, model_cfg)
    ok = all(k["bitwise_equal"] for k in kernels) and model["logits_pass"] and model["graph_decode_equal"]
    info = {"device": args.device, "passed": ok, "seconds": round(time.time() - t0, 1)}
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    write_json(args.out / "correctness.json", info | {"kernels": kernels, "model": model})
    summary = {**info, "tiny": args.tiny, "random_weights": True}
    if not args.skip_bench:
        dirs = make_random_twins(model_cfg, args.out / "work" / "random")
        bench = {"formats": FORMATS, "batch_sizes": [1] if args.tiny else [1, 32]}
        if args.tiny:
            bench |= {"new_tokens": 4, "repeats": 1, "warmup": 0, "threads": 1}
        settings = bench_settings({"bench": {**config["bench"], **bench}})
        run_bench(dirs, args.out / "bench" / "results.csv", settings, args.device)
        summary["targets"] = targets(args.out / "bench" / "results.csv")
    summary["provenance"] = provenance(device=args.device)
    write_json(args.out / "summary.json", summary)
    print(json.dumps(summary, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
