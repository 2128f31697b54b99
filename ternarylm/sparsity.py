"""Layer-wise ternary sparsity (paper F2): fraction of weights whose ternary code is 0, +1, -1.

``ternarylm sparsity --config C --model DIR --out results/sparsity/{variant}/seed{s}.csv``

One row per (layer, module): the embedding (``Emb``) and every projection of every block
(``L1..Ln`` x q, k, v, o, gate, up, down), plus one ``module=all`` row per layer that pools its
modules (weighted by size). Codes come from :func:`ternarylm.quant.ternary_codes`, i.e. exactly
the absmean ternarization the ternary twin uses in its forward pass.

Weights that the model does *not* ternarize are analysed the same way and flagged
``quantized=False``: the embedding of either twin (it stays full precision, but the paper reports
an "Emb 35 %" row, so we give the number absmean ternarization *would* give) and every weight of
the fp32 twin (a control: Gaussian weights give about 31 % zeros under absmean rounding).

``frac_zero_init`` is the zero fraction the same module had at initialisation: the run's seed
(config.json ``seed``) rebuilds the step-0 weights with ``model.build_model``, the function
pretraining starts from, so ``frac_zero - frac_zero_init`` is what training changed. Without a
recorded seed the column is left empty (and a line is logged).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ternarylm.io import UserError, read_json, write_csv
from ternarylm.layout import SPARSITY_FIELDS
from ternarylm.model import PROJECTIONS, TransformerLM, build_model, load_model
from ternarylm.quant import BitLinear, ternary_codes

# one column list for writer and reader (the report package is torch-free, so it owns it)
FIELDS = SPARSITY_FIELDS
EMBEDDING = "Emb"
ALL = "all"

log = logging.getLogger("ternarylm.sparsity")


def code_stats(weight: torch.Tensor) -> dict[str, float | int]:
    """Fractions of ternary codes 0 / +1 / -1, the absmean scale alpha and the weight count."""
    codes, alpha = ternary_codes(weight)
    n = codes.numel()
    n_zero = int((codes == 0).sum())
    n_pos = int((codes == 1).sum())
    return {
        "frac_zero": n_zero / n,
        "frac_pos": n_pos / n,
        "frac_neg": (n - n_zero - n_pos) / n,
        "alpha": float(alpha),
        "n_weights": n,
    }


def _pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Size-weighted pool of module rows (alpha is per tensor, so it is left empty)."""
    n = sum(r["n_weights"] for r in rows)
    out = {k: sum(r[k] * r["n_weights"] for r in rows) / n for k in ("frac_zero", "frac_pos", "frac_neg")}
    return {**out, "alpha": None, "n_weights": n, "quantized": all(r["quantized"] for r in rows)}


def sparsity_rows(
    model: TransformerLM, variant: str | None = None, seed: int | None = None
) -> list[dict[str, Any]]:
    """Rows of :data:`FIELDS` for ``model`` (embedding first, then each block's modules + pooled row).

    With ``seed`` each row also gets ``frac_zero_init``: the same row of the model's step-0
    weights, ``build_model(model.cfg, seed)``; without it the column is None (an empty cell).
    """
    rows = _code_rows(model, variant or model.cfg.linear)
    init = _code_rows(build_model(model.cfg, seed=seed), "") if seed is not None else None
    for i, row in enumerate(rows):
        row["frac_zero_init"] = init[i]["frac_zero"] if init is not None else None
    return rows


def _code_rows(model: TransformerLM, variant: str) -> list[dict[str, Any]]:
    emb = {"layer": EMBEDDING, "layer_index": 0, "module": "embedding", "quantized": False}
    rows = [{"variant": variant, **emb, **code_stats(model.tok_emb.weight)}]
    for i, block in enumerate(model.layers, start=1):
        parents = {"q": block.attn, "k": block.attn, "v": block.attn, "o": block.attn}
        parents.update({"gate": block.mlp, "up": block.mlp, "down": block.mlp})
        layer_rows = []
        for name in PROJECTIONS:
            lin: nn.Linear = getattr(parents[name], name)
            layer_rows.append(
                {
                    "variant": variant,
                    "layer": f"L{i}",
                    "layer_index": i,
                    "module": name,
                    "quantized": isinstance(lin, BitLinear),
                    **code_stats(lin.weight),
                }
            )
        rows.extend(layer_rows)
        rows.append(
            {"variant": variant, "layer": f"L{i}", "layer_index": i, "module": ALL, **_pooled(layer_rows)}
        )
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="pretrain run folder (model.safetensors)")
    parser.add_argument("--out", required=True, type=Path, help="output CSV (sparsity/{variant}/seed{s}.csv)")


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    if not (args.model / "config.json").exists():
        raise UserError(f"missing model config: {args.model / 'config.json'}")
    model = load_model(args.model)
    seed = read_json(args.model / "config.json").get("seed")
    if seed is None:
        log.warning("%s: config.json records no seed; frac_zero_init left empty", args.model)
    rows = sparsity_rows(model, seed=None if seed is None else int(seed))
    write_csv(args.out, rows, FIELDS)
    mid = [r for r in rows if r["module"] == ALL]
    init = "" if seed is None else f" (at init {sum(r['frac_zero_init'] for r in mid) / len(mid):.3f})"
    log.info(
        "%s: %d layers, zero fraction %.3f..%.3f%s (embedding what-if %.3f) -> %s",
        model.cfg.linear,
        len(mid),
        min(r["frac_zero"] for r in mid),
        max(r["frac_zero"] for r in mid),
        init,
        rows[0]["frac_zero"],
        args.out,
    )
