"""The sparsity trajectory: how each ternary projection's zero fraction moves during pretraining.

At every eval step pretraining calls :func:`trajectory_rows` and keeps the rows beside its
metrics (``trajectory.csv``, columns :data:`FIELDS`). Besides the zero fraction and the absmean
scale alpha it records the shape of the latent weight distribution: under absmean rounding a
weight is zero when ``|w| < alpha / 2``, and for a Gaussian that is 31.01 % of the weights
(``alpha = sqrt(2/pi) sigma``; ``report.paper.GAUSS_ZERO_FRAC``), so zeros can only rise above 31 % if the distribution grows
heavier tails and a sharper peak — a lower ``mean|w| / std`` and a positive excess kurtosis.

Read-only and random-free (no RNG draw, no parameter touched), so recording it leaves training
bitwise unchanged. The fp32 twin's weights are counted too, flagged ``quantized=False``: what
absmean rounding would give them, a control for the ternary twin's numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn

from ternarylm.layout import TRAJECTORY_FIELDS
from ternarylm.model import PROJECTIONS
from ternarylm.quant import BitLinear, absmean_scale

FIELDS = TRAJECTORY_FIELDS
ALL = "all"


def projections(model: nn.Module) -> Iterator[tuple[int, str, nn.Linear]]:
    """(layer index from 1, projection name, linear) of every block's projections, in order."""
    for i, block in enumerate(model.layers, start=1):
        for name in PROJECTIONS:
            parent = block.attn if name in ("q", "k", "v", "o") else block.mlp
            yield i, name, getattr(parent, name)


@torch.no_grad()
def weight_stats(weight: torch.Tensor) -> dict[str, float | int]:
    """Zero fraction under absmean rounding, alpha, mean|w|/std and excess kurtosis of one tensor."""
    w = weight.detach().float().flatten()
    alpha = absmean_scale(w)
    zeros = int(((w / alpha).round() == 0).sum())
    centred = w - w.mean()
    var = centred.pow(2).mean()
    std = var.sqrt().clamp(min=1e-12)
    kurt = centred.pow(4).mean() / var.pow(2).clamp(min=1e-24) - 3.0
    return {
        "frac_zero": zeros / w.numel(),
        "alpha": float(alpha),
        "absmean_over_std": float(w.abs().mean() / std),
        "excess_kurtosis": float(kurt),
        "n_weights": w.numel(),
    }


def trajectory_rows(model: nn.Module, step: int, epoch: float) -> list[dict[str, Any]]:
    """Rows of :data:`FIELDS` for ``model`` at ``step``: each projection, then a pooled row per layer."""
    model = getattr(model, "_orig_mod", model)  # a compiled module: its parameters are the same tensors
    rows: list[dict[str, Any]] = []
    by_layer: dict[int, list[dict[str, Any]]] = {}
    for i, name, lin in projections(model):
        row = {"layer": f"L{i}", "layer_index": i, "module": name, "quantized": isinstance(lin, BitLinear)}
        by_layer.setdefault(i, []).append({**row, **weight_stats(lin.weight)})
    for i, layer_rows in by_layer.items():
        n = sum(r["n_weights"] for r in layer_rows)
        pooled = {
            "layer": f"L{i}",
            "layer_index": i,
            "module": ALL,
            "quantized": all(r["quantized"] for r in layer_rows),
            # alpha and the shape are per tensor: a pool of differently scaled tensors has neither
            "frac_zero": sum(r["frac_zero"] * r["n_weights"] for r in layer_rows) / n,
            "n_weights": n,
        }
        rows.extend(layer_rows + [pooled])
    return [{"step": step, "epoch": epoch, **r} for r in rows]
