"""Naive reference ternary layer, written the obvious way (the seed notebook's approach).

One custom ``torch.autograd.Function`` quantizes the weight (per-tensor absmean, round-clip to
{-1, 0, +1}) and the activations (per-token absmax, 8 bits) on every call, does the matmul, and
implements the straight-through estimator by hand in ``backward``. It is meant to run in fp32,
eager, without autocast: that is how the seed trains, and it is the baseline that
``benchmarks/train_throughput.py`` times side by side with the fast path (``BitLinear`` in bf16
autocast, optionally ``torch.compile``-d).

Why the fast path does not look like this: under bf16 autocast the ``forward`` matmul returns
bf16 while the tensors saved for ``backward`` stay fp32, so the hand-written backward multiplies
mismatched dtypes and fails (the seed's crash); and a custom ``Function`` is opaque to fusion.
``ternarylm.quant.BitLinear`` writes the STE as tensor arithmetic instead, so autocast and
``torch.compile`` see through it.

Numerics versus ``BitLinear``: the weight quantization and the activation quantization use the
same formulas (bitwise identical quantized tensors); the forward value and both gradients agree
up to float rounding of the matmuls (``x @ W.T`` here versus ``F.linear``), which
``tests/test_fastpath.py`` checks. The backward is the plain STE: the gradient passes the
quantizers unchanged (no clipping window), exactly what ``BitLinear``'s ``ste`` does.

``swap_to_reference(model)`` replaces every ``BitLinear`` in a model with ``RefBitLinear``, in
place, sharing the same weight ``Parameter`` (build the optimizer after the swap).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ternarylm.quant import EPS, swap_bitlinears


class TernaryLinearFunction(torch.autograd.Function):
    """y = q8(x) @ (alpha * ternary(W / alpha)).T with a hand-written straight-through backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, act_bits: int) -> torch.Tensor:
        alpha = weight.abs().mean().clamp(min=EPS)
        w_q = torch.clamp(torch.round(weight / alpha), -1, 1) * alpha
        if act_bits:
            qmax = 2 ** (act_bits - 1) - 1
            scale = qmax / x.abs().amax(dim=-1, keepdim=True).clamp(min=EPS)
            x_q = torch.clamp(torch.round(x * scale), -qmax - 1, qmax) / scale
        else:
            x_q = x
        ctx.save_for_backward(x_q, w_q)
        return x_q @ w_q.t()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x_q, w_q = ctx.saved_tensors
        # straight-through: d q(x)/dx := 1 and d q(W)/dW := 1
        grad_x = grad_out @ w_q
        grad_w = grad_out.reshape(-1, grad_out.shape[-1]).t() @ x_q.reshape(-1, x_q.shape[-1])
        return grad_x, grad_w, None


class RefBitLinear(nn.Module):
    """Reference ternary linear layer (no bias), numerically equivalent to ``BitLinear``."""

    def __init__(
        self, in_features: int, out_features: int, act_bits: int = 8, weight: nn.Parameter | None = None
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.act_bits = in_features, out_features, act_bits
        if weight is None:
            weight = nn.Parameter(torch.empty(out_features, in_features))
            nn.init.normal_(weight, std=0.02)
        elif weight.shape != (out_features, in_features):
            raise ValueError(f"weight shape {tuple(weight.shape)} != {(out_features, in_features)}")
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TernaryLinearFunction.apply(x, self.weight, self.act_bits)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, act_bits={self.act_bits}"


def swap_to_reference(model: nn.Module) -> nn.Module:
    """Replace every ``BitLinear`` in ``model`` by a ``RefBitLinear`` sharing its weight, in place.

    Returns ``model``. The weight Parameters are the same objects (an existing optimizer keeps
    working) and the global RNG is not touched (dropout masks stay those of the unswapped model).
    """
    return swap_bitlinears(
        model, lambda m: RefBitLinear(m.in_features, m.out_features, act_bits=m.act_bits, weight=m.weight)
    )


def count_reference_layers(model: nn.Module) -> int:
    """Number of ``RefBitLinear`` modules in ``model``."""
    return sum(isinstance(m, RefBitLinear) for m in model.modules())
