"""What pretraining and fine-tuning share: device, precision, optimizer, signals, progress lines."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import signal
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn

from ternarylm.io import UserError

log = logging.getLogger("ternarylm.train")
PROGRESS_SECONDS = 60.0  # a progress line at least this often, whatever log_every says


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda requested but torch sees no CUDA GPU")
    return torch.device(name)


def setup_device(name: str, threads: int | None) -> torch.device:
    """Resolve the device and set what changes speed (not results) on it."""
    device = resolve_device(name)
    if device.type == "cpu" and threads:
        torch.set_num_threads(int(threads))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


# bf16 runs natively from compute capability 8.0 (Ampere); older cards (the authors' T4s: 7.5)
# emulate it and Inductor falls back to slow kernels. There ``auto`` trains in fp32 (tf32 does not
# exist there either): slower than fp16 would be, but fp16 needs loss scaling, a second numeric
# path with its own checkpoint state that no run of this project has tested.
NATIVE_BF16_CAPABILITY = (8, 0)


def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """``bf16`` or ``fp32``: what ``precision`` means on ``device`` (``auto``: bf16 where native)."""
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    capability = tuple(torch.cuda.get_device_capability(device))
    if capability >= NATIVE_BF16_CAPABILITY:
        return "bf16"
    log.info("precision auto: fp32 on this GPU (compute capability %d.%d has no native bf16)", *capability)
    return "fp32"


def autocast_context(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast where :func:`resolve_precision` says so (``bf16`` forces it, CPU too)."""
    if resolve_precision(device, precision) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(device: torch.device, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Host batch tensors on ``device``. On CUDA they are pinned and copied ``non_blocking``: a copy
    from pageable memory blocks the host until the GPU has drained its queue, once per tensor and
    step. (Pinned blocks come from torch's caching host allocator, which keeps them until the copy
    has run, so the temporaries may be dropped at once.)"""
    if device.type != "cuda":
        return tuple(tensors)
    return tuple(t.pin_memory().to(device, non_blocking=True) for t in tensors)


def make_optimizer(model: nn.Module, cfg: dict[str, Any], device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay on matrices only (not norms, not biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg["weight_decay"]},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    betas = tuple(cfg.get("betas") or (0.9, 0.999))
    # the fused kernel is one launch per step on CUDA; on CPU it would change results
    return torch.optim.AdamW(groups, lr=cfg["lr"], betas=betas, fused=device.type == "cuda")


def fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-able object: a checkpoint resumes only under the same one."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def threads_for_fingerprint(device: torch.device, threads: int | None) -> int | None:
    # CPU reductions are split by thread, so 1 vs 2 threads give different models; not so on CUDA
    return int(threads) if device.type == "cpu" and threads else None


class StopRequest:
    """Records SIGTERM/SIGUSR1 (SLURM preemption, time limit) so the loop checkpoints and exits."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum
        log.warning("received %s: saving a checkpoint after this step", signal.Signals(signum).name)


@contextlib.contextmanager
def stop_signals() -> Iterator[StopRequest]:
    stop = StopRequest()
    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Timer:
    """True once every ``seconds`` (None: never); the wall-clock checkpoint and progress cadence."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds, self.last = seconds, time.monotonic()

    def due(self) -> bool:
        return self.seconds is not None and time.monotonic() - self.last >= self.seconds

    def reset(self) -> None:
        self.last = time.monotonic()


def _short(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def _eta(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 60:.0f}m" if seconds >= 60 else f"{seconds:.0f}s"


class Progress:
    """One log line per update ("step 120/600 (20%) loss 3.21 1.8k tok/s eta 2m").

    A log record is one whole line, so this renders in a log file and interleaved log lines cannot
    break it (a tqdm bar rewrites its line with \\r and only works on a terminal).
    """

    def __init__(
        self, desc: str, total: int, start: int = 0, unit: str = "tok", logger: logging.Logger = log
    ) -> None:
        self.desc, self.total, self.unit, self.logger = desc, total, unit, logger
        self.t0, self.start = time.monotonic(), start

    def line(self, step: int, loss: float | None = None, items_per_s: float | None = None) -> str:
        pct = 100.0 * step / max(self.total, 1)
        parts = [f"{self.desc}: step {step}/{self.total} ({pct:.0f}%)"]
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        if items_per_s is not None:
            parts.append(f"{_short(items_per_s)} {self.unit}/s")
        done = step - self.start
        if 0 < done and step < self.total:
            left = (time.monotonic() - self.t0) / done * (self.total - step)
            parts.append(f"eta {_eta(left)}")
        return " ".join(parts)

    def log(self, step: int, loss: float | None = None, items_per_s: float | None = None) -> None:
        self.logger.info("%s", self.line(step, loss, items_per_s))
