"""Export a trained twin as a Hugging Face ``LlamaForCausalLM`` folder (no custom code needed).

``AutoModelForCausalLM.from_pretrained(OUT)`` and ``AutoTokenizer.from_pretrained(OUT)`` load it.
Our decoder is a Llama: RMSNorm, SwiGLU, RoPE, no biases, untied head. Two differences are mapped:

* RoPE: ours rotates consecutive pairs (2i, 2i+1); HF Llama's ``rotate_half`` rotates (i, i + D/2)
  with the same frequency i. Permuting every head's q and k output rows to [0, 2, 4, ..., 1, 3, ...]
  makes HF compute the same scores (q.k is invariant when q and k get the same permutation).
  Permuting rows changes neither a ternary tensor's alpha (mean |W|) nor its codes' values.
* Ternary projections, ``--hf-quant``:
  - ``none`` (default): unpacked ``alpha * codes`` in ``--hf-dtype`` (default float32: logits equal
    ours to ~1e-6 and every CPU runs it; bfloat16 halves the size). Plain Llama, runs anywhere,
    but without the 8-bit activation quantization of the trained forward: the summary and model
    card record the validation perplexity both ways.
  - ``bitnet``: transformers' built-in ``bitnet`` quantizer, ``linear_class="autobitlinear"``,
    ``quantization_mode="offline"`` (integrations/bitnet.py): 2-bit codes packed 4 per uint8 along
    the *output* dim (packed row r holds rows r, r + R, r + 2R, r + 3R at bits 0, 2, 4, 6, code + 1,
    R = out/4), unpacked at load; its forward is ``linear(actquant8(x), codes) * weight_scale``, so
    ``weight_scale`` is alpha (for ``linear_class="bitlinear"`` it would be 1/alpha). Its per-token
    absmax 8-bit activation rule is ours (127 / absmax, clamp 1e-5, round, clamp [-128, 127]):
    this is the trained W1.58A8 forward. Needs ``accelerate`` at load time.
* Tokenizer: our WordPiece ``tokenizer.json`` (specials registered as special tokens). In our
  token streams every document follows a [SEP] (which ends the previous one), so [SEP] is both bos
  and eos. The tokenizer adds nothing by itself: ``tok(text)`` gives the bare ids, as our
  ``tokenize`` stage does, so lm-eval's rolling perplexity (bos prefix + bare ids) scores exactly
  the sequence the model was trained on; prompts for generation start with ``tok.bos_token``,
  as ``ternarylm generate`` puts [SEP] before the prompt.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ternarylm.io import UserError, atomic_dir, atomic_path, read_json, write_json, write_text
from ternarylm.model import BLOCK_NAMES, rename_module
from ternarylm.provenance import provenance

log = logging.getLogger("ternarylm.hf_export")

HF_QUANTS = ("none", "bitnet")
HF_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PACK = 4  # ternary codes per uint8 in transformers' bitnet format

# our module name inside a block -> HF Llama module name
HF_LAYER_NAMES = {ours: hf for ours, (_, hf) in BLOCK_NAMES.items()}


def hf_name(name: str) -> str:
    """Map our module name (``layers.3.mlp.up``) to its HF Llama module name."""
    top = {"tok_emb": "model.embed_tokens", "norm": "model.norm", "head": "lm_head"}
    return rename_module(name, top, HF_LAYER_NAMES, "model.layers.{i}.{name}")


def rope_permutation(n_heads: int, head_dim: int) -> torch.Tensor:
    """Row order taking consecutive-pair RoPE rows to ``rotate_half`` rows, per head."""
    per_head = torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))
    return torch.cat([h * head_dim + per_head for h in range(n_heads)])


def pack_bitnet(codes: torch.Tensor) -> torch.Tensor:
    """int8 codes (out, in) -> uint8 (out/4, in) in transformers' bitnet order (see module doc)."""
    out_features = codes.shape[0]
    if out_features % PACK:
        raise UserError(f"bitnet packing needs output dims divisible by {PACK}, got {out_features}")
    q = (codes.to(torch.int16) + 1).to(torch.uint8).reshape(PACK, out_features // PACK, -1)
    packed = torch.zeros_like(q[0])
    for i in range(PACK):
        packed |= q[i] << (2 * i)
    return packed


def llama_config(cfg, dtype: str, specials: dict[str, int], quant: dict | None) -> dict[str, Any]:
    """config.json of the HF export (LlamaForCausalLM) for our ``ModelConfig``."""
    out = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_hidden,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.seq_len,
        "rms_norm_eps": cfg.norm_eps,
        # both spellings: transformers >= 5 reads rope_parameters, 4.x reads rope_theta
        "rope_theta": cfg.rope_base,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_base},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "initializer_range": cfg.init_std,
        "bos_token_id": specials["sep"],
        "eos_token_id": specials["sep"],
        "pad_token_id": specials["pad"],
        "torch_dtype": dtype,
        "dtype": dtype,
        "use_cache": True,
    }
    if quant is not None:
        out["quantization_config"] = quant
    return out


def hf_state_dict(model, hf_quant: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Our weights under HF Llama names: q/k rows permuted, ternary as alpha*codes or packed."""
    from ternarylm.quant import BitLinear, ternary_codes

    cfg = model.cfg
    perm = rope_permutation(cfg.n_heads, cfg.head_dim)
    out: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if not hasattr(module, "weight") or isinstance(module, torch.nn.ModuleList) or name == "":
            continue
        w = module.weight.detach().float()
        if name == "head":  # its padding rows (vocab_multiple, for the GPU) are not part of the model
            w = w[: cfg.vocab_size]
        if name.endswith(("attn.q", "attn.k")):
            w = w[perm]
        key = hf_name(name)
        if isinstance(module, BitLinear):
            codes, alpha = ternary_codes(w)
            if hf_quant == "bitnet":
                out[f"{key}.weight"] = pack_bitnet(codes)
                out[f"{key}.weight_scale"] = alpha.reshape(1).to(dtype)
                continue
            w = codes.float() * alpha
        out[f"{key}.weight"] = w.to(dtype).contiguous()
    return out


def bitnet_config(model) -> dict[str, Any]:
    """``quantization_config`` for transformers' bitnet method; full-precision linears stay out."""
    from ternarylm.quant import BitLinear

    if model.cfg.act_bits != 8:
        raise UserError(
            f"--hf-quant bitnet reproduces 8-bit activations; this model uses act_bits={model.cfg.act_bits}"
        )
    keep = ["lm_head"] + [
        hf_name(n)
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and not isinstance(m, BitLinear) and n != "head"
    ]
    return {
        "quant_method": "bitnet",
        "linear_class": "autobitlinear",
        "quantization_mode": "offline",
        "modules_to_not_convert": keep,
        "use_rms_norm": False,
    }


def tokenizer_files(tokenizer_path: str | Path, seq_len: int) -> dict[str, str]:
    """tokenizer.json, tokenizer_config.json and special_tokens_map.json of the export."""
    from ternarylm.tokenizer import SPECIALS, load_tokenizer

    tok = load_tokenizer(tokenizer_path)
    # registered as special added tokens so every reader of tokenizer.json (transformers, lm-eval's
    # task, plain `tokenizers`) maps the text "[SEP]" to the [SEP] id, as transformers does anyway
    tok.add_special_tokens(SPECIALS)
    tok.post_processor = None  # bare ids, like our tokenize stage (see the module doc)
    pad, unk, cls, sep, mask = SPECIALS
    specials = {
        "bos_token": sep,
        "eos_token": sep,
        "unk_token": unk,
        "pad_token": pad,
        "cls_token": cls,
        "sep_token": sep,
        "mask_token": mask,
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": seq_len,
        "do_lower_case": True,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": True,
        **specials,
    }
    return {
        "tokenizer.json": tok.to_str(pretty=True),
        "tokenizer_config.json": json.dumps(config, indent=2) + "\n",
        "special_tokens_map.json": json.dumps(specials, indent=2) + "\n",
    }


@torch.no_grad()
def window_ppl(forward, tokens: np.ndarray, seq_len: int, windows: int | None, batch: int = 16) -> dict:
    """exp(mean CE) of ``forward`` over the first ``windows`` non-overlapping windows (evaluate's scheme)."""
    import torch.nn.functional as F

    n = (len(tokens) - 1) // seq_len
    n = min(n, windows) if windows else n
    if n < 1:
        raise UserError(f"need at least {seq_len + 1} validation tokens, got {len(tokens)}")
    total, count = 0.0, 0
    for s in range(0, n, batch):
        rows = [tokens[i * seq_len : i * seq_len + seq_len + 1] for i in range(s, min(n, s + batch))]
        t = torch.from_numpy(np.stack(rows).astype(np.int64))
        logits = forward(t[:, :-1]).float()
        total += F.cross_entropy(logits.flatten(0, 1), t[:, 1:].flatten(), reduction="sum").item()
        count += t[:, 1:].numel()
    return {"ppl": math.exp(total / count), "ce": total / count, "tokens": count}


def export_ppl(model, tokens: np.ndarray, windows: int | None) -> dict[str, Any]:
    """Validation PPL of the trained forward and of the unpacked (no activation quantization) form."""
    from ternarylm.quant import BitLinear

    bitlinears = [m for m in model.modules() if isinstance(m, BitLinear)]
    trained = window_ppl(model, tokens, model.cfg.seq_len, windows)
    out = {"val_tokens": trained["tokens"], "val_ppl_trained_forward": trained["ppl"]}
    if bitlinears:
        saved = [m.act_bits for m in bitlinears]
        for m in bitlinears:
            m.act_bits = 0  # the `--hf-quant none` form: alpha*codes weights, full-precision activations
        try:
            out["val_ppl_unpacked_no_act_quant"] = window_ppl(model, tokens, model.cfg.seq_len, windows)[
                "ppl"
            ]
        finally:
            for m, b in zip(bitlinears, saved):
                m.act_bits = b
        out["ppl_ratio_unpacked_vs_trained"] = out["val_ppl_unpacked_no_act_quant"] / trained["ppl"]
    return out


def export_hf(
    model_dir: str | Path,
    tokenizer: str | Path | None,
    out: str | Path,
    hf_quant: str = "none",
    dtype: str = "float32",
    val_tokens: str | Path | None = None,
    val_windows: int | None = 256,
) -> dict[str, Any]:
    """Write ``out/`` (config, safetensors, tokenizer, generation config, export.json); returns the summary."""
    from safetensors.torch import save_file

    from ternarylm.model import load_model
    from ternarylm.quant import BitLinear
    from ternarylm.tokenizer import SPECIALS

    if hf_quant not in HF_QUANTS:
        raise UserError(f"--hf-quant must be one of {HF_QUANTS}, got {hf_quant!r}")
    if dtype not in HF_DTYPES:
        raise UserError(f"--hf-dtype must be one of {tuple(HF_DTYPES)}, got {dtype!r}")
    model = load_model(model_dir)
    ternary = any(isinstance(m, BitLinear) for m in model.modules())
    if hf_quant == "bitnet" and not ternary:
        raise UserError(f"{model_dir}: --hf-quant bitnet needs a ternary model (no BitLinear layers)")
    out = Path(out)
    if (out / "model.safetensors").exists() and not (out / "export.json").exists():
        raise UserError(f"{out} holds a model that is not an HF export; choose another --out folder")
    quant = bitnet_config(model) if hf_quant == "bitnet" else None
    specials = dict(zip(("pad", "unk", "cls", "sep", "mask"), range(len(SPECIALS))))
    # no tokenizer: weights and config only (`ternarylm bench` of random twins loads just those)
    files = tokenizer_files(tokenizer, model.cfg.seq_len) if tokenizer is not None else {}

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(hf_state_dict(model, hf_quant, HF_DTYPES[dtype]), str(tmp), metadata={"format": "pt"})
    write_json(out / "config.json", llama_config(model.cfg, dtype, specials, quant))
    gen = {"bos_token_id": specials["sep"], "eos_token_id": specials["sep"], "pad_token_id": specials["pad"]}
    write_json(out / "generation_config.json", gen)
    for name, text in files.items():
        write_text(out / name, text)

    summary: dict[str, Any] = {
        "source": str(model_dir),
        "variant": model.cfg.linear,
        "hf_quant": hf_quant if ternary else "none",
        "dtype": dtype,
        "params": model.num_params(),
        "bytes": (out / "model.safetensors").stat().st_size,
    }
    if val_tokens is not None:
        from ternarylm.encode import load_tokens

        summary.update(export_ppl(model, load_tokens(val_tokens), val_windows))
    summary["provenance"] = provenance(device="cpu")  # load_model's default device
    write_json(out / "export.json", summary)
    log.info("wrote %s: %s", out, summary)
    return summary


# --- CLI (`ternarylm export --format hf`; export.py dispatches here) ---------------------------------


def add_arguments(p) -> None:
    """The options of ``--format hf`` (added to ``ternarylm export``'s parser)."""
    p.add_argument(
        "--hf-quant", default="none", choices=HF_QUANTS, help="hf: ternary weights unpacked or bitnet"
    )
    p.add_argument("--hf-dtype", default="float32", choices=tuple(HF_DTYPES), help="hf: dtype of the weights")
    p.add_argument(
        "--val-tokens", type=Path, help="hf: val .bin; PPL of trained vs exported forward -> export.json"
    )
    p.add_argument(
        "--val-windows", type=int, default=256, help="hf: seq_len windows for --val-tokens (0 = all)"
    )
    p.add_argument(
        "--card-eval", nargs="*", default=[], help="hf: evaluate JSONs (all seeds) for the model card"
    )
    p.add_argument(
        "--card-finetune", nargs="*", default=[], help="hf: finetune metrics.json (all seeds) for the card"
    )
    p.add_argument("--card-gguf", help="hf: GGUF file named in the card's llama.cpp snippet")
    p.add_argument("--card-command", help="hf: the command that produced the export, quoted in the card")


def run(args) -> dict[str, Any]:
    from ternarylm.modelcard import write_model_card

    check_args(args)
    # whole or absent: weights, tokenizer, export.json and card appear together or not at all
    with atomic_dir(args.out) as tmp:
        summary = export_hf(
            args.model,
            args.tokenizer,
            tmp,
            args.hf_quant,
            args.hf_dtype,
            args.val_tokens,
            args.val_windows or None,
        )
        write_model_card(
            tmp,
            evals=args.card_eval,
            finetunes=args.card_finetune,
            gguf=args.card_gguf,
            command=args.card_command,
            out_name=str(args.out),
        )
    log.info("wrote %s", args.out)
    return summary


def check_args(args) -> None:
    """Refuse, before anything is written, arguments the export would fail on half-way."""
    from ternarylm.encode import load_tokens
    from ternarylm.identity import check_tokenizer

    if not args.tokenizer:
        raise UserError("--tokenizer is required for --format hf")
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not (out / "export.json").is_file():
        raise UserError(f"{out} holds files that are not an HF export; choose another --out folder")
    if args.val_windows is not None and args.val_windows < 0:
        raise UserError(f"--val-windows must be 0 (all windows) or more, got {args.val_windows}")
    cfg = read_json(Path(args.model) / "config.json").get("model") or {}
    check_tokenizer(args.model, args.tokenizer, cfg.get("vocab_size"))
    if args.val_tokens is not None:
        tokens = load_tokens(args.val_tokens, cfg.get("vocab_size"))
        if len(tokens) < int(cfg.get("seq_len", 1)) + 1:
            raise UserError(
                f"{args.val_tokens}: {len(tokens)} tokens is less than one window of {cfg['seq_len'] + 1}"
            )
    _check_card_inputs(args.card_eval, args.card_finetune)


def _check_card_inputs(evals, finetunes) -> None:
    """Each card input read as the card reads it: a wrong kind of JSON is one line naming it."""
    from ternarylm.modelcard import finetune_scores, results_section

    checks = [
        ("--card-eval", p, "an evaluate JSON", lambda p: results_section([read_json(p)], None, None))
        for p in evals or []
    ]
    checks += [
        (
            "--card-finetune",
            p,
            "a fine-tune metrics.json",
            lambda p: results_section([], finetune_scores([Path(p)]), None),
        )
        for p in finetunes or []
    ]
    for option, path, kind, read in checks:
        try:
            read(path)
        except (KeyError, TypeError, IndexError, AttributeError) as e:
            raise UserError(f"{option} {path}: not {kind} (no {e})") from e
