"""Packed ternary inference for PyTorch: 2-bit codes, 4 per byte, plus one alpha per linear.

Format (``pack_codes``): code ``c`` in {-1, 0, +1} is stored as ``c + 1`` in two bits; along the
input dimension, element ``4j + k`` lives in byte ``j`` at bits ``2k .. 2k+1``. A weight of shape
(out, in) becomes a uint8 tensor (out, ceil(in / 4)) -- 16x smaller than fp32.

:class:`PackedTernaryLinear` is the inference twin of :class:`ternarylm.quant.BitLinear` (same
forward: 8-bit per-token absmax activations times ``alpha * codes``). ``pack_model`` swaps every
BitLinear of a model for one (a module swap, torchao style); ``save_packed``/``load_packed``
read and write the packed safetensors file that ``ternarylm export --format packed`` produces.

CPU kernels (``mode``):
  * ``int8``   -- exact int8 x int8 matmul (:func:`int8_matmul`: the integer sums computed as a float32
    GEMM, which cannot round here) on codes unpacked once and cached as int8 (1 byte/weight in RAM,
    the file stays 2-bit). Fastest on CPU.
  * ``unpack`` -- unpack the 2-bit codes on every call (lookup table) and run a float matmul;
    the weights never exist unpacked between calls (smallest RAM, slower). Same float ops as
    BitLinear, so its outputs equal the QAT model's bit for bit.
  ``int8`` rounds differently from the float reference (its integer sums are exact); activations
  that sit exactly on a rounding tie of the next layer's 8-bit quantizer -- common, since they are
  themselves sums of grid values -- can then round the other way, so whole-model logits agree to
  ~1e-2, not bitwise. The reference for both is BitLinear itself (tests/test_deploy.py).
  * ``dense``  -- unpack and dequantize once, keep ``alpha * codes`` cached in the activation dtype
    and run a float matmul (bitwise the ``unpack`` result). What ``int8`` means on a GPU
    (:func:`kernel_for`): rebuilding the lookup table and unpacking every call costs thousands of
    small kernels per token there. It holds the weights dense in memory, so on a GPU it is a
    latency baseline, not the deployed ternary form (the bench marks its row ``baseline``).
CUDA paths run through plain torch ops and have NOT been tested on a GPU (no GPU where this was
written); the deployed GPU form is ternarylm.w2 (Triton kernels on these packed codes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ternarylm.quant import EPS, BitLinear, quantize_activation, swap_bitlinears, ternary_codes

FORMAT = "ternarylm-packed-v1"
MODES = ("int8", "unpack", "dense")


def pack_codes(codes: torch.Tensor) -> torch.Tensor:
    """Pack int codes in {-1,0,1} (..., n) into uint8 (..., ceil(n/4)), 4 codes per byte."""
    n = codes.shape[-1]
    q = (codes.to(torch.int16) + 1).to(torch.uint8)
    pad = (-n) % 4
    if pad:
        q = F.pad(q, (0, pad), value=1)  # padding codes are 0
    q = q.unflatten(-1, (-1, 4))
    return q[..., 0] | (q[..., 1] << 2) | (q[..., 2] << 4) | (q[..., 3] << 6)


def _lut(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(256, 4) table: byte value -> its four codes."""
    b = torch.arange(256, dtype=torch.int16, device=device)
    return torch.stack([((b >> (2 * k)) & 3) - 1 for k in range(4)], dim=-1).to(dtype)


def unpack_codes(packed: torch.Tensor, n: int, dtype: torch.dtype = torch.int8) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: uint8 (..., ceil(n/4)) -> codes (..., n) of ``dtype``."""
    codes = F.embedding(packed.long(), _lut(packed.device, dtype))
    return codes.flatten(-2)[..., :n]


# every product of an int8 activation and a ternary code is an integer of magnitude <= 128, so a
# float32 dot product over fewer than 2**24 / 128 inputs never rounds: it equals the int32 sum
EXACT_FLOAT_IN = 2**24 // 128


def int8_matmul(xq: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``xq @ codes.T`` as float32 for int8 ``xq`` (M, in) and int8 ternary ``codes`` (out, in), exactly.

    Runs as a float32 GEMM on the integer values (the codes converted one layer at a time, so RAM
    holds them as int8): bit for bit ``torch._int_mm``'s int32 result. On CPU ``torch._int_mm``
    costs ~0.5 ms per row of a 768x2048 layer (2 cores), so this is what makes batches affordable:
    paper-size packed decoding at batch 32 took 168 instead of 1136 ms/token (2 cores, same
    machine and minute); at batch 1 the two were within run-to-run noise (51-79 ms/token on a
    noisy machine). Wider inputs, where float32 could round, fall back to ``torch._int_mm``.
    """
    if codes.shape[-1] < EXACT_FLOAT_IN:
        return F.linear(xq.float(), codes.float())
    return torch._int_mm(xq, codes.t()).float()


def kernel_for(mode: str, device: torch.device) -> str:
    """The kernel a PackedTernaryLinear in ``mode`` runs on ``device`` (int8 is a CPU kernel)."""
    if mode == "int8" and device.type != "cpu":
        return "dense"
    return mode


class PackedTernaryLinear(nn.Module):
    """Inference-only ternary linear: packed 2-bit codes + fp32 alpha, no latent weight."""

    def __init__(self, in_features: int, out_features: int, act_bits: int = 8, mode: str = "int8") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.in_features, self.out_features = in_features, out_features
        self.act_bits, self.mode = act_bits, mode
        self.register_buffer("packed", torch.zeros(out_features, (in_features + 3) // 4, dtype=torch.uint8))
        self.register_buffer("alpha", torch.ones(1))
        self._codes: torch.Tensor | None = None  # int8 cache for mode "int8"
        self._dense: torch.Tensor | None = None  # alpha * codes cache for mode "dense"

    @classmethod
    def from_bitlinear(cls, m: BitLinear, mode: str = "int8") -> PackedTernaryLinear:
        codes, alpha = ternary_codes(m.weight)
        new = cls(m.in_features, m.out_features, m.act_bits, mode).to(m.weight.device)
        new.packed.copy_(pack_codes(codes))
        new.alpha.fill_(float(alpha))
        return new

    def codes(self) -> torch.Tensor:
        """Unpacked int8 codes (out, in)."""
        return unpack_codes(self.packed, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = kernel_for(self.mode, x.device)
        if kernel == "int8" and self.act_bits == 8:
            return self._forward_int8(x)
        # reference path, bitwise the BitLinear forward (same float ops)
        if self.act_bits:
            x = quantize_activation(x, self.act_bits)
        if kernel == "dense":
            d = self._dense
            if d is None or d.device != x.device or d.dtype != x.dtype:
                self._dense = d = self.dequantized(x.dtype)
            return F.linear(x, d)
        return F.linear(x, self.dequantized(x.dtype))

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        return unpack_codes(self.packed, self.in_features, dtype) * self.alpha.to(dtype)

    def _forward_int8(self, x: torch.Tensor) -> torch.Tensor:
        if self._codes is None or self._codes.device != x.device:
            self._codes = self.codes()
        shape = x.shape
        xf = x.reshape(-1, shape[-1]).float()
        scale = 127.0 / xf.abs().amax(dim=-1, keepdim=True).clamp(min=EPS)
        xq = (xf * scale).round().clamp(-128, 127).to(torch.int8)
        y = int8_matmul(xq, self._codes) * (self.alpha / scale)
        return y.to(x.dtype).reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"act_bits={self.act_bits}, mode={self.mode}"
        )


def pack_model(model: nn.Module, mode: str = "int8") -> nn.Module:
    """Replace every BitLinear in ``model`` (in place) by a PackedTernaryLinear; returns ``model``."""
    return swap_bitlinears(model, lambda m: PackedTernaryLinear.from_bitlinear(m, mode))


def save_packed(
    model: nn.Module, path: str | Path, fp16: bool = False, extra: dict[str, Any] | None = None
) -> None:
    """Write a (packed or BitLinear) TransformerLM as packed safetensors.

    Keys: ``<linear>.packed`` (uint8) and ``<linear>.alpha`` (fp32, shape (1,)) per ternary linear;
    every other tensor as-is (fp16 with ``fp16=True``). The model config rides in the metadata.
    """
    from safetensors.torch import save_file

    from ternarylm.io import atomic_path

    bitlinears = {n: m for n, m in model.named_modules() if isinstance(m, BitLinear)}
    state = {}
    for k, v in model.state_dict().items():
        owner = k.removesuffix(".weight")
        if owner in bitlinears:
            codes, alpha = ternary_codes(v)
            state[f"{owner}.packed"] = pack_codes(codes).cpu().contiguous()
            state[f"{owner}.alpha"] = alpha.reshape(1).float().cpu()
            continue
        v = v.detach().cpu()
        if fp16 and v.is_floating_point() and not k.endswith(".alpha"):
            v = v.half()
        state[k] = v.contiguous()
    meta = {"format": FORMAT, "model": json.dumps(model.cfg.to_dict()), "extra": json.dumps(extra or {})}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def load_packed(path: str | Path, mode: str = "int8", dtype: torch.dtype = torch.float32) -> nn.Module:
    """Load a packed safetensors file into a TransformerLM with PackedTernaryLinear layers."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ternarylm.io import UserError
    from ternarylm.model import ModelConfig, TransformerLM, rope_tables

    path = Path(path)
    if not path.exists():
        raise UserError(f"missing packed model: {path}")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: not a {FORMAT} file (metadata format={meta.get('format')!r})")
    cfg = ModelConfig.from_dict(json.loads(meta["model"]))
    with torch.device("meta"):  # no latent weights are ever materialised
        model = TransformerLM(cfg)
    swap_bitlinears(model, lambda m: PackedTernaryLinear(m.in_features, m.out_features, m.act_bits, mode))
    state = load_file(str(path))
    state = {
        k: (v.to(dtype) if v.is_floating_point() and not k.endswith(".alpha") else v)
        for k, v in state.items()
    }
    model.load_state_dict(state, strict=True, assign=True)  # alpha stays fp32
    # rope tables are non-persistent buffers, still on meta: build them
    model.rope_cos, model.rope_sin = rope_tables(cfg.head_dim, cfg.seq_len, cfg.rope_base)
    return model.eval()
