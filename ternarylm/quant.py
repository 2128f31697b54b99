"""Ternary weight and 8-bit activation quantization (BitNet b1.58 style).

Weights: per-tensor absmean scale ``alpha = mean(|W|)``; codes ``round(clip(W / alpha, -1, 1))``
in {-1, 0, +1}; the forward pass uses ``alpha * codes``.
Activations: per-token absmax scaling to signed 8-bit integers, dequantized straight back.

The straight-through estimator is plain tensor arithmetic (:func:`ste`), not a custom
``autograd.Function``, so bf16 autocast and ``torch.compile`` trace through it.
"""

from __future__ import annotations

from collections.abc import Callable

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
        self._wq: tuple[tuple, torch.Tensor] | None = None  # (cache key, quantized weight), eval only

    def train(self, mode: bool = True) -> BitLinear:
        self._wq = None  # a cache made in eval mode must not outlive it
        return super().train(mode)

    def _cache_key(self) -> tuple | None:
        # inference tensors have no version counter: no cache for weights made in inference mode
        if self.weight.is_inference():
            return None
        w = self.weight
        return (w._version, w.data_ptr(), w.device, w.dtype, torch.is_inference_mode_enabled())

    def quantized_weight(self) -> torch.Tensor:
        """alpha * ternary(W / alpha); cached in eval mode without autograd.

        The key holds the weight's version counter, so an optimizer step or load_state_dict (both
        in place) invalidates it; train() drops it. While training, or with autograd on, every call
        quantizes afresh and the STE carries the gradient to the latent weight.
        """
        if self.training or torch.is_grad_enabled() or torch.compiler.is_compiling():
            return ste(self.weight, quantize_weight(self.weight))
        key = self._cache_key()
        if key is None:
            return quantize_weight(self.weight)
        if self._wq is None or self._wq[0] != key:
            self._wq = (key, quantize_weight(self.weight))
        return self._wq[1]

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The forward's activation quantization, exposed so layers sharing an input do it once."""
        return ste(x, quantize_activation(x, self.act_bits)) if self.act_bits else x

    def forward(self, x: torch.Tensor, input_quantized: bool = False) -> torch.Tensor:
        if not input_quantized:
            x = self.quantize_input(x)
        return F.linear(x, self.quantized_weight())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, act_bits={self.act_bits}"


def shared_input(x: torch.Tensor, *linears: nn.Module) -> list[torch.Tensor]:
    """``[m(x) for m in linears]``, quantizing ``x`` once when every layer is a BitLinear with the
    same ``act_bits`` (q/k/v, gate/up): same values, a third of the activation passes."""
    if all(type(m) is BitLinear for m in linears) and len({m.act_bits for m in linears}) == 1:
        xq = linears[0].quantize_input(x)
        return [m(xq, input_quantized=True) for m in linears]
    return [m(x) for m in linears]


def ternary_state(model: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Map module name -> (int8 codes, alpha) for every BitLinear in ``model``."""
    return {name: ternary_codes(m.weight) for name, m in model.named_modules() if isinstance(m, BitLinear)}


def swap_bitlinears(
    model: nn.Module, make: Callable[[nn.Module], nn.Module], types: tuple[type, ...] = (BitLinear,)
) -> nn.Module:
    """Replace every BitLinear (or other module of ``types``) inside ``model`` by ``make(it)``, in place;
    returns ``model``. The one swap the packed, w2 (deployment) and reference (seed's slow path) layers use."""
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, types)]
    for name, m in targets:
        if not name:
            raise ValueError("a swap needs a model containing BitLinear layers, not a BitLinear")
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, make(m))
    return model
