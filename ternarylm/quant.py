"""Ternary weight and 8-bit activation quantization (BitNet b1.58 style).

Weights: per-tensor absmean scale ``alpha = mean(|W|)``; codes ``round(clip(W / alpha, -1, 1))``
in {-1, 0, +1}; the forward pass uses ``alpha * codes``.
Activations: per-token absmax scaling to signed 8-bit integers, dequantized straight back.

The straight-through estimator is plain tensor arithmetic (:func:`ste`), not a custom
``autograd.Function``, so bf16 autocast and ``torch.compile`` trace through it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-5


def ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward value ``q`` exactly, gradient of the identity w.r.t. ``x``."""
    return q.detach() + (x - x.detach())


def absmean_scale(w: torch.Tensor) -> torch.Tensor:
    """Per-tensor ternary scale alpha = mean |W| (clamped away from zero)."""
    return w.abs().mean().clamp(min=EPS)


def ternary_codes(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (codes in {-1,0,1} as int8, alpha as a 0-d float tensor) for a weight matrix."""
    w = w.detach().float()
    alpha = absmean_scale(w)
    codes = (w / alpha).round().clamp(-1, 1).to(torch.int8)
    return codes, alpha


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """alpha * ternary(W / alpha), same dtype as ``w`` (no gradient path)."""
    alpha = absmean_scale(w)
    return (w / alpha).round().clamp(-1, 1) * alpha


def quantize_activation(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Per-token (last dim) absmax fake-quantization to signed ``bits``-bit integers."""
    qmax = 2 ** (bits - 1) - 1
    scale = qmax / x.abs().amax(dim=-1, keepdim=True).clamp(min=EPS)
    return (x * scale).round().clamp(-qmax - 1, qmax) / scale


class BitLinear(nn.Linear):
    """Linear layer with ternary weights and 8-bit activations in the forward pass.

    Keeps a latent full-precision weight (trained through the STE). No bias (llama.cpp's
    ``llama`` architecture has none). ``act_bits=0`` disables activation quantization.
    """

    def __init__(self, in_features: int, out_features: int, act_bits: int = 8) -> None:
        super().__init__(in_features, out_features, bias=False)
        self.act_bits = act_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = ste(self.weight, quantize_weight(self.weight))
        if self.act_bits:
            x = ste(x, quantize_activation(x, self.act_bits))
        return F.linear(x, w)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, act_bits={self.act_bits}"


def ternary_state(model: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Map module name -> (int8 codes, alpha) for every BitLinear in ``model``."""
    return {name: ternary_codes(m.weight) for name, m in model.named_modules() if isinstance(m, BitLinear)}
