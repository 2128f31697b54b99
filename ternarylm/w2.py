"""``torch-w2``: ternary inference with the weights kept 2-bit in (GPU) memory, W1.58A8.

:class:`W2Linear` holds the packed codes of :mod:`ternarylm.packed` (4 per byte, the per-tensor
alpha as fp32) and nothing else; its forward is the trained one (``ternarylm.quant.BitLinear``):
activations quantized per token to 8 bits (``127 / absmax``, clamp 1e-5, round, clamp [-128, 127])
times ``alpha * codes``. It computes the integer sums ``xq @ codes.T`` exactly and scales them once
(``alpha / scale`` per row), like the CPU ``int8`` kernel of ternarylm.packed; against BitLinear's
float matmul that is ~1e-7 relative, and whole-model logits agree to the bitnet export's tolerance
(an occasional activation on a rounding tie of the next layer's quantizer rounds the other way).

Kernels (``W2Linear.kernel``):
  * ``triton``    -- :mod:`ternarylm.w2_triton`: a GEMV for decode (<= 8 rows) and an int8 ``tl.dot``
    GEMM for prefill, both reading the packed bytes directly (no dense weight is ever materialised).
    Runs on CUDA, and on CPU tensors under ``TRITON_INTERPRET=1`` (the tests).
  * ``reference`` -- pure torch (torchao style): unpack the codes on every call, exact integer matmul
    (:func:`ternarylm.packed.int8_matmul`). Slow; the kernels' specification, bit for bit.
  * ``auto``      -- ``triton`` where it can run (CUDA, or the interpreter), else ``reference``.
Triton is optional (the ``deploy`` extra; CUDA builds of torch ship it): without it ``auto`` is the
reference and importing this module still works.

``to_w2(model)`` swaps every BitLinear (or PackedTernaryLinear, sharing its buffers) of a model in
place; ``load_w2(path)`` reads the packed file of ``ternarylm export --format packed``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
import torch.nn as nn

from ternarylm.packed import PackedTernaryLinear, int8_matmul, load_packed, pack_codes, unpack_codes
from ternarylm.quant import EPS, BitLinear, swap_bitlinears, ternary_codes

KERNELS = ("auto", "triton", "reference")


@functools.cache
def triton_kernels():
    """The Triton launcher, or None where Triton is not installed (plain CPU installs)."""
    try:
        from ternarylm.w2_triton import w2_matmul_triton
    except ImportError:
        return None
    return w2_matmul_triton


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def resolve_kernel(kernel: str, device: torch.device) -> str:
    """The kernel ``kernel`` means on ``device`` (``auto``: Triton wherever it can run)."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel != "auto":
        return kernel
    can_run = device.type == "cuda" or (device.type == "cpu" and interpreting())
    return "triton" if can_run and triton_kernels() is not None else "reference"


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 activations and their per-row scale ``127 / absmax`` of a 2-D float tensor (BitLinear's rule)."""
    xf = x.float()
    scale = 127.0 / xf.abs().amax(dim=-1, keepdim=True).clamp(min=EPS)
    return (xf * scale).round().clamp(-128, 127).to(torch.int8), scale.squeeze(-1)


def w2_matmul_reference(xq: torch.Tensor, packed: torch.Tensor, k: int, s: torch.Tensor) -> torch.Tensor:
    """float32 ``s[:, None] * (xq @ codes.T)``: the specification of the Triton kernels, pure torch."""
    return int8_matmul(xq, unpack_codes(packed, k)) * s.float()[:, None]


def w2_matmul(
    xq: torch.Tensor, packed: torch.Tensor, k: int, s: torch.Tensor, kernel: str = "auto"
) -> torch.Tensor:
    if resolve_kernel(kernel, xq.device) == "triton":
        launch = triton_kernels()
        if launch is None:
            raise RuntimeError("kernel 'triton' needs the triton package (pip install triton)")
        return launch(xq, packed, k, s)
    return w2_matmul_reference(xq, packed, k, s)


class W2Linear(nn.Module):
    """Inference-only ternary linear: packed 2-bit codes (N, ceil(K/4)) uint8 + fp32 alpha, W1.58A8."""

    def __init__(self, in_features: int, out_features: int, kernel: str = "auto") -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.in_features, self.out_features, self.kernel = in_features, out_features, kernel
        self.register_buffer("packed", torch.zeros(out_features, (in_features + 3) // 4, dtype=torch.uint8))
        self.register_buffer("alpha", torch.ones(1))

    @classmethod
    def from_module(cls, m: nn.Module, kernel: str = "auto") -> W2Linear:
        """From a BitLinear (codes packed here) or a PackedTernaryLinear (its buffers shared)."""
        if getattr(m, "act_bits", 8) != 8:
            raise ValueError(f"torch-w2 computes W1.58A8; this layer has act_bits={m.act_bits}")
        new = cls(m.in_features, m.out_features, kernel)
        if isinstance(m, PackedTernaryLinear):
            new.packed, new.alpha = m.packed, m.alpha
            return new
        codes, alpha = ternary_codes(m.weight)
        new.packed = pack_codes(codes).to(m.weight.device)
        new.alpha = alpha.reshape(1).float().to(m.weight.device)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        xq, scale = quantize_rows(x.reshape(-1, shape[-1]))
        y = w2_matmul(xq, self.packed, self.in_features, self.alpha / scale, self.kernel)
        return y.to(x.dtype).reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, kernel={self.kernel}"


def to_w2(model: nn.Module, kernel: str = "auto") -> nn.Module:
    """Swap every BitLinear / PackedTernaryLinear of ``model`` for a W2Linear, in place; returns it."""
    return swap_bitlinears(model, lambda m: W2Linear.from_module(m, kernel), (BitLinear, PackedTernaryLinear))


def load_w2(path: str | Path, kernel: str = "auto", dtype: torch.dtype = torch.float32) -> nn.Module:
    """A packed safetensors file (``ternarylm export --format packed``) as a W2Linear model."""
    return to_w2(load_packed(path, mode="unpack", dtype=dtype), kernel)
