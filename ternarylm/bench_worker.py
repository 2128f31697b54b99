"""The measuring half of `ternarylm bench`: runs in a fresh subprocess per format (see bench.py).

Reads one JSON spec on stdin (what to load, which batches, the timing settings), loads that one
format, decodes with the KV cache and prints a JSON list of rows as its last stdout line. Peak
memory (VmHWM) then belongs to that format alone. Column meanings: bench.py's docstring.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _proc_status_mb(key: str) -> float | None:
    """A memory line of /proc/self/status (``VmHWM``, ``VmRSS``) in MB; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    """Peak resident set size of this process so far, MB.

    Linux: VmHWM, which starts afresh at exec (ru_maxrss would inherit the parent's peak).
    """
    peak = _proc_status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def _current_rss_mb() -> float:
    now = _proc_status_mb("VmRSS")
    return now if now is not None else float("nan")


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


def _load_torch(spec: dict[str, Any]):
    """(model on the device, weight MB) of one torch format."""
    import torch

    from ternarylm.model import load_model
    from ternarylm.packed import load_packed

    fmt = spec["format"]
    if fmt == "hf-bitnet":
        return _load_hf(spec)
    if fmt == "torch-w2":
        from ternarylm.w2 import load_w2

        # Triton kernels on CUDA, the pure-torch reference kernel on CPU (w2.resolve_kernel)
        model = load_w2(spec["path"])
        weight_mb = _tensor_mb(model)  # 2-bit codes + the fp32 embedding, norms and head, as held
    elif fmt == "torch-packed":
        # on a GPU packed_mode int8 runs the dense cache (packed.kernel_for): a baseline row
        model = load_packed(spec["path"], mode=spec["packed_mode"])
        weight_mb = os.path.getsize(spec["path"]) / 1e6
    else:
        model = load_model(spec["path"], lean=True)  # the weights held once: the memory rows
        if fmt == "torch-bf16":
            model = model.to(torch.bfloat16)
        elif fmt == "torch-int8":
            import warnings

            from torch.ao.quantization import quantize_dynamic

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        weight_mb = _tensor_mb(model)
    return model.to(torch.device(spec["device"])).eval(), weight_mb


class HFCached:
    """A transformers causal LM behind ``forward_cached`` (our decode loop), KV cache included."""

    def __init__(self, model) -> None:
        self.model = model

    def forward_cached(self, idx, cache=None):
        out = self.model(input_ids=idx, past_key_values=cache, use_cache=True)
        return out.logits, out.past_key_values


def _load_hf(spec: dict[str, Any]):
    """The hf-bitnet folder through transformers: bf16 on CUDA (its usual dtype, torch.compile'd
    activation quantizer), fp32 on CPU with dynamo off (compiling there costs minutes per run and
    the CPU row is a baseline)."""
    import torch
    from transformers import AutoModelForCausalLM

    cuda = spec["device"] == "cuda"
    if not cuda:
        torch._dynamo.config.disable = True
    dtype = torch.bfloat16 if cuda else torch.float32
    model = AutoModelForCausalLM.from_pretrained(spec["path"], dtype=dtype, device_map=spec["device"]).eval()
    # bytes as held in memory: AutoBitLinear unpacks the 2-bit codes to dense `dtype` at load
    return HFCached(model), _tensor_mb(model)


def _decode_fn(model, prompt, new_tokens: int, kv_cache: bool, sync):
    """``fn() -> (prefill s, decode s)`` for one prompt batch; without ``kv_cache`` every step
    re-runs the whole sequence (what the seed notebook measured)."""
    import torch

    @torch.inference_mode()
    def once():
        t0 = time.perf_counter()
        logits, cache = model.forward_cached(prompt)
        sync()
        t1 = time.perf_counter()
        for _ in range(new_tokens):
            logits, cache = model.forward_cached(logits[:, -1].argmax(-1, keepdim=True), cache)
        sync()
        return t1 - t0, time.perf_counter() - t1

    @torch.inference_mode()
    def once_nocache():
        t0 = time.perf_counter()
        ids = prompt
        logits = model(ids)
        sync()
        t1 = time.perf_counter()
        for _ in range(new_tokens):
            ids = torch.cat((ids, logits[:, -1].argmax(-1, keepdim=True)), dim=1)
            logits = model(ids)
        sync()
        return t1 - t0, time.perf_counter() - t1

    return once if kv_cache else once_nocache


def _graph_fn(model, prompt, new_tokens: int, sync):
    """``fn() -> (prefill s, decode s)`` with each decode step one CUDA graph replay (static_decode)."""
    from ternarylm.static_decode import StaticDecoder

    dec = StaticDecoder(model, prompt.shape[0], prompt.shape[1] + new_tokens + 1, model.tok_emb.weight.dtype)
    dec.prefill(prompt)
    dec.capture()

    def once():
        t0 = time.perf_counter()
        dec.prefill(prompt)
        sync()
        t1 = time.perf_counter()
        for _ in range(new_tokens):
            dec.step()
        sync()
        return t1 - t0, time.perf_counter() - t1

    return once


def _measure_torch(spec: dict[str, Any]) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(spec["threads"])
    base = _rss_mb()
    model, weight_mb = _load_torch(spec)
    device = torch.device(spec["device"])
    load_rss = _current_rss_mb()
    cuda = device.type == "cuda"
    gpu_load = torch.cuda.memory_allocated(device) / 1e6 if cuda else None
    gen = torch.Generator().manual_seed(spec["seed"])
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    rows = []
    for batch in spec["batches"]:
        prompt = torch.randint(5, spec["vocab_size"], (batch, spec["prompt_tokens"]), generator=gen)
        kv = spec["format"] != "torch-nocache"
        fn = _decode_fn(model, prompt.to(device), spec["new_tokens"], kv, sync)
        decode = "kv-cache" if kv else "no-cache"
        if cuda and kv and spec["format"].startswith("torch-"):
            try:  # every torch row on CUDA alike, so launch overhead does not decide the comparison
                fn, decode = _graph_fn(model, prompt.to(device), spec["new_tokens"], sync), "cuda-graph"
            except Exception as e:  # a failed capture is recorded (decode column), never a lost bench
                print(
                    f"{spec['format']}: CUDA graph capture failed ({e!r}); eager KV-cache decode",
                    file=sys.stderr,
                )
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        prefill, timings, n = _timed(fn, spec["warmup"], spec["repeats"], spec["budget_s"])
        row = _row(spec, Timing(batch, weight_mb, base, load_rss, prefill, timings, n))
        row["decode"] = decode
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
        rows.append(_row(spec, Timing(batch, weight_mb, base, load_rss, prefill, decode, n)))
    return rows


@dataclass(frozen=True)
class Timing:
    """What one batch of one format measured (sizes in MB, times in s); ``_row`` makes it a CSV row."""

    batch: int
    weight_mb: float
    base_rss: float  # process RSS before loading the model
    load_rss: float  # current RSS after loading it
    prefill: float
    decodes: list[float]  # decode time of each timed run
    repeats: int


def _row(spec: dict[str, Any], t: Timing) -> dict[str, Any]:
    batch, weight_mb, base, load_rss = t.batch, t.weight_mb, t.base_rss, t.load_rss
    per_token = [1000 * d / spec["new_tokens"] for d in t.decodes]
    ms = statistics.median(per_token)
    return {
        "device": spec["device"],
        "variant": spec["variant"],
        "format": spec["format"],
        "role": spec["role"],
        "batch": batch,
        "threads": spec["threads"],
        "n_params": int(spec["n_params"]),
        "weight_mb": round(weight_mb, 2),
        "load_rss_mb": round(load_rss, 1),
        "rss_mb": round(_current_rss_mb(), 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "base_rss_mb": round(base, 1),
        "gpu_load_mb": "",  # CUDA only: torch.cuda.memory_allocated after loading
        "gpu_peak_mb": "",  # CUDA only: torch.cuda.max_memory_allocated while decoding that batch
        "prefill_ms": round(1000 * t.prefill, 3),
        "ms_per_token": round(ms, 3),
        "ms_per_token_iqr": round(iqr(per_token), 3),
        "tokens_per_s": round(batch * 1000 / ms, 2),
        "prompt_tokens": spec["prompt_tokens"],
        "new_tokens": spec["new_tokens"],
        "repeats": t.repeats,
        "decode": "llama.cpp",  # torch rows: kv-cache, no-cache or cuda-graph (_measure_torch)
    }


def main() -> None:
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


if __name__ == "__main__":
    main()
