"""Export a trained twin to its deployed forms: GGUF for llama.cpp, packed safetensors for PyTorch.

GGUF (``--format gguf``): llama.cpp's ``llama`` architecture, read by llama.cpp / llama-cpp-python.
  * ternary projections as TQ2_0 (2.06 bits/weight) or TQ1_0 (1.69 bits/weight). The blocks are
    filled by hand from our codes: every 256-weight block stores exactly our ternary codes and our
    per-tensor alpha (as fp16) as its scale, so nothing is re-quantized;
  * full-precision projections (the fp32 twin) as F32, F16 or Q8_0 (``--linear-type``);
  * token embedding and LM head as F32, F16 or Q8_0 (``--embed-type``); RMSNorm weights F32;
  * no q/k permutation: our RoPE already rotates consecutive pairs (2i, 2i+1), which is
    llama.cpp's native ("normal") rope for this architecture;
  * the WordPiece vocab as llama.cpp's ``bert`` (WPM) tokenizer, converted as llama.cpp's own
    converter does: ``##x`` -> ``x``, any other piece -> ``"\u2581" + piece``, ``[SPECIAL]`` kept.
    Specials: bos/cls = [CLS], eos/sep = [SEP] (the document separator of our token streams), unk,
    pad, mask. llama.cpp's WPM pre-tokenizer lower-cases and splits punctuation like BERT's but keeps
    accents (NFD marks) where ours strips them: ids agree on ASCII text.

packed safetensors (``--format packed``): see :mod:`ternarylm.packed`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ternarylm import hf_export
from ternarylm.identity import check_tokenizer
from ternarylm.io import UserError, atomic_path, read_json, require, write_json
from ternarylm.model import BLOCK_NAMES, rename_module, require_causal
from ternarylm.provenance import provenance

log = logging.getLogger("ternarylm.export")

TERNARY_TYPES = ("tq2_0", "tq1_0")
DENSE_TYPES = ("f32", "f16", "q8_0")
QK = 256  # ggml super-block: TQ1_0/TQ2_0 need every input dim divisible by it

# our module name -> llama.cpp tensor name (per layer)
LAYER_NAMES = {ours: gguf for ours, (gguf, _) in BLOCK_NAMES.items()}


def gguf_name(name: str) -> str:
    """Map a state-dict key (``layers.3.mlp.up.weight``) to its llama.cpp tensor name."""
    top = {"tok_emb": "token_embd", "norm": "output_norm", "head": "output"}
    return rename_module(name.removesuffix(".weight"), top, LAYER_NAMES, "blk.{i}.{name}") + ".weight"


# --- ternary blocks -------------------------------------------------------------------------------


def tq2_0_blocks(codes: np.ndarray, alpha: float) -> np.ndarray:
    """Pack int8 codes (rows, n) into ggml ``block_tq2_0`` bytes (rows, n/256*66).

    Block layout (ggml-common.h / gguf.quants.TQ2_0): 64 bytes ``qs`` then fp16 ``d``. Codes are
    stored as ``c + 1`` in 2 bits; within each half-block of 128 values, byte ``l`` (0..31) holds
    values ``l, l+32, l+64, l+96`` at bits 0, 2, 4, 6.
    """
    rows, n = codes.shape
    q = (codes.astype(np.int16) + 1).astype(np.uint8).reshape(rows, n // QK, 2, 4, 32)
    qs = q[..., 0, :] | (q[..., 1, :] << 2) | (q[..., 2, :] << 4) | (q[..., 3, :] << 6)
    qs = qs.reshape(rows, n // QK, 64)
    d = np.full((rows, n // QK, 1), alpha, dtype=np.float16).view(np.uint8)
    return np.concatenate([qs, d], axis=-1).reshape(rows, -1)


def tq1_0_blocks(codes: np.ndarray, alpha: float) -> np.ndarray:
    """ggml ``block_tq1_0`` bytes (rows, n/256*54): gguf's base-3 packing of the codes, scale = alpha."""
    import gguf

    rows, n = codes.shape
    raw = gguf.quants.quantize(codes.astype(np.float32), gguf.GGMLQuantizationType.TQ1_0)
    blocks = raw.reshape(rows, n // QK, 54)
    blocks[..., 52:] = np.array([alpha], dtype=np.float16).view(np.uint8)  # d is the last 2 bytes
    return blocks.reshape(rows, -1)


def dense_tensor(w: np.ndarray, kind: str) -> tuple[np.ndarray, Any]:
    """(data, raw_dtype) of a float matrix stored as f32 / f16 / q8_0."""
    import gguf

    if kind == "f32":
        return w.astype(np.float32), None
    if kind == "f16":
        return w.astype(np.float16), None
    if kind == "q8_0":
        return gguf.quants.quantize(w.astype(np.float32), gguf.GGMLQuantizationType.Q8_0), (
            gguf.GGMLQuantizationType.Q8_0
        )
    raise UserError(f"unknown tensor type {kind!r} (choose from {DENSE_TYPES})")


# --- tokenizer ---------------------------------------------------------------------------------------


def wpm_vocab(
    tokenizer_path: str | Path | None, vocab_size: int
) -> tuple[list[str], list[int], dict[str, int]]:
    """(tokens, token types, special ids) of the WordPiece vocab in llama.cpp's ``bert`` convention.

    Without a tokenizer (random benchmark twins) the vocab is the five specials plus
    ``[unused{i}]`` placeholders. A vocab smaller than the model's is padded the same way.
    """
    import gguf

    tt = gguf.TokenType
    pieces: dict[int, str] = {}
    special: set[int] = set()
    prefix = "##"
    if tokenizer_path is not None:
        from tokenizers import Tokenizer

        path = Path(tokenizer_path)
        if not path.exists():
            raise UserError(f"missing tokenizer: {path}")
        tok = Tokenizer.from_file(str(path))
        prefix = getattr(tok.model, "continuing_subword_prefix", None) or "##"
        pieces = {i: p for p, i in tok.get_vocab(with_added_tokens=True).items()}
        special = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    else:
        pieces = {i: p for i, p in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
        special = set(pieces)
    if max(pieces) >= vocab_size:
        raise UserError(f"tokenizer has {max(pieces) + 1} tokens but the model only {vocab_size}")
    ids = {p: i for i, p in pieces.items()}
    names = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
    missing = [p for p in names.values() if p not in ids]
    if missing:
        raise UserError(f"tokenizer lacks special tokens {missing}")
    specials = {k: ids[p] for k, p in names.items()}

    tokens, types = [], []
    for i in range(vocab_size):
        p = pieces.get(i)
        if p is None:
            tokens.append(f"[unused{i}]")
            types.append(tt.UNUSED)
        elif i in special or (p.startswith("[") and p.endswith("]") and len(p) > 2):
            tokens.append(p)
            types.append(tt.UNKNOWN if i == specials["unk"] else tt.CONTROL)
        elif p.startswith(prefix):
            tokens.append(p[len(prefix) :])
            types.append(tt.NORMAL)
        else:
            tokens.append("\u2581" + p)
            types.append(tt.NORMAL)
    return tokens, [int(t) for t in types], specials


# --- GGUF --------------------------------------------------------------------------------------------


def export_gguf(
    model_dir: str | Path,
    out: str | Path,
    tokenizer: str | Path | None,
    ternary_type: str = "tq2_0",
    embed_type: str = "f16",
    linear_type: str = "f32",
) -> dict[str, Any]:
    """Write ``model_dir`` (model.safetensors + config.json) as a llama-arch GGUF; returns a summary."""
    import gguf

    from ternarylm.model import load_model
    from ternarylm.quant import BitLinear

    _check_types(ternary_type, embed_type, linear_type)
    model = load_model(model_dir)
    ternary = {name for name, m in model.named_modules() if isinstance(m, BitLinear)}
    for name in ternary:
        d_in = model.get_submodule(name).in_features
        if d_in % QK:
            raise UserError(f"{name}: input dim {d_in} is not a multiple of {QK}; TQ types need it")
    file_type = {
        "tq2_0": gguf.LlamaFileType.MOSTLY_TQ2_0,
        "tq1_0": gguf.LlamaFileType.MOSTLY_TQ1_0,
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[ternary_type if ternary else linear_type]

    out = Path(out)
    with atomic_path(out) as tmp:
        w = gguf.GGUFWriter(str(tmp), arch="llama")
        try:
            _write_metadata(w, model.cfg, wpm_vocab(tokenizer, model.cfg.vocab_size), int(file_type))
            counts = _add_tensors(w, model, ternary, ternary_type, embed_type, linear_type)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
        finally:  # a failed write (a full disk) must not leave the deleted temporary open
            with contextlib.suppress(OSError):
                w.close()
    size = out.stat().st_size
    log.info("wrote %s (%.1f MB, tensor types %s)", out, size / 1e6, counts)
    return {"path": str(out), "bytes": size, "tensor_types": counts, "file_type": file_type.name}


def _check_types(ternary_type: str, embed_type: str, linear_type: str) -> None:
    if ternary_type not in TERNARY_TYPES:
        raise UserError(f"--ternary-type must be one of {TERNARY_TYPES}, got {ternary_type!r}")
    for what, kind in (("--embed-type", embed_type), ("--linear-type", linear_type)):
        if kind not in DENSE_TYPES:
            raise UserError(f"{what} must be one of {DENSE_TYPES}, got {kind!r}")


def _write_metadata(
    w: Any, cfg: Any, vocab: tuple[list[str], list[int], dict[str, int]], file_type: int
) -> None:
    """llama-arch hyperparameters and the WordPiece vocab as llama.cpp's ``bert`` tokenizer."""
    import gguf

    tokens, types, specials = vocab
    w.add_name(f"ternarylm-{cfg.linear}")
    w.add_context_length(cfg.seq_len)
    w.add_embedding_length(cfg.d_model)
    w.add_block_count(cfg.n_layers)
    w.add_feed_forward_length(cfg.ffn_hidden)
    w.add_head_count(cfg.n_heads)
    w.add_head_count_kv(cfg.n_heads)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_rope_freq_base(float(cfg.rope_base))
    w.add_layer_norm_rms_eps(float(cfg.norm_eps))
    w.add_vocab_size(cfg.vocab_size)  # the real vocab: the model's state dict drops the head's padding
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_bos_token_id(specials["cls"])
    w.add_eos_token_id(specials["sep"])
    w.add_sep_token_id(specials["sep"])
    w.add_unk_token_id(specials["unk"])
    w.add_pad_token_id(specials["pad"])
    w.add_mask_token_id(specials["mask"])
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)


def _add_tensors(
    w: Any, model: torch.nn.Module, ternary: set[str], ternary_type: str, embed_type: str, linear_type: str
) -> dict[str, int]:
    """Add every tensor in its GGUF type; returns how many tensors of each type."""
    import gguf

    from ternarylm.quant import ternary_codes

    tq = gguf.GGMLQuantizationType.TQ2_0 if ternary_type == "tq2_0" else gguf.GGMLQuantizationType.TQ1_0
    pack = tq2_0_blocks if ternary_type == "tq2_0" else tq1_0_blocks
    counts: dict[str, int] = {}
    for key, t in model.state_dict().items():
        name, owner = gguf_name(key), key.removesuffix(".weight")
        t = t.detach().float()
        raw = None
        if owner in ternary:
            codes, alpha = ternary_codes(t)
            data, raw, kind = pack(codes.numpy(), float(alpha)), tq, ternary_type
        elif t.ndim == 1:
            data, kind = t.numpy().astype(np.float32), "f32"
        elif owner in ("tok_emb", "head"):
            (data, raw), kind = dense_tensor(t.numpy(), embed_type), embed_type
        else:
            (data, raw), kind = dense_tensor(t.numpy(), linear_type), linear_type
        counts[kind] = counts.get(kind, 0) + 1
        w.add_tensor(name, data, raw_dtype=raw)
    return counts


def export_packed(model_dir: str | Path, out: str | Path, fp16: bool = False) -> dict[str, Any]:
    """Write the ternary twin of ``model_dir`` as packed safetensors; returns a summary."""
    from ternarylm.model import load_model
    from ternarylm.packed import save_packed
    from ternarylm.quant import BitLinear

    model = load_model(model_dir)
    if not any(isinstance(m, BitLinear) for m in model.modules()):
        raise UserError(f"{model_dir}: not a ternary model (no BitLinear layers to pack)")
    save_packed(model, out, fp16=fp16, extra={"source": str(model_dir)})
    size = Path(out).stat().st_size
    log.info("wrote %s (%.1f MB)", out, size / 1e6)
    return {"path": str(out), "bytes": size}


def logit_agreement(
    model_dir: str | Path,
    gguf_path: str | Path,
    tokens: np.ndarray,
    windows: int = 8,
    threads: int | None = None,
) -> dict[str, Any]:
    """Compare llama.cpp's logits for ``gguf_path`` with the PyTorch (QAT) logits of ``model_dir``.

    Runs ``windows`` consecutive ``seq_len``-token windows of ``tokens`` through both; returns
    max / mean absolute logit difference, the PyTorch logit range and the top-1 agreement.
    """
    from ternarylm.generate import LlamaCpp
    from ternarylm.model import load_model

    model = load_model(model_dir)
    n = model.cfg.seq_len
    windows = min(windows, len(tokens) // n)
    if windows < 1:
        raise UserError(f"need at least {n} tokens to compare logits, got {len(tokens)}")
    max_abs, sum_abs, agree, count, scale = 0.0, 0.0, 0, 0, 0.0
    with LlamaCpp(gguf_path, n_ctx=n, threads=threads) as llm:
        for w in range(windows):
            ids = [int(t) for t in tokens[w * n : (w + 1) * n]]
            llm.reset()
            got = llm.decode([ids], all_logits=True)
            with torch.no_grad():
                ref = model(torch.tensor([ids]))[0].float().numpy()
            diff = np.abs(got - ref)
            max_abs, sum_abs = max(max_abs, float(diff.max())), sum_abs + float(diff.mean()) * len(ids)
            agree += int((got.argmax(-1) == ref.argmax(-1)).sum())
            count += len(ids)
            scale = max(scale, float(np.abs(ref).max()))
    return {
        "positions": count,
        "max_abs_diff": max_abs,
        "mean_abs_diff": sum_abs / count,
        "max_abs_logit": scale,
        "top1_agreement": agree / count,
    }


# --- CLI ---------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("gguf", "packed", "hf"), required=True)
    p.add_argument("--model", required=True, help="model dir (model.safetensors + config.json)")
    p.add_argument("--tokenizer", help="tokenizer.json (GGUF vocab); required for gguf")
    p.add_argument("--out", required=True, help="output file (.gguf / .safetensors); hf: a new folder")
    p.add_argument(
        "--ternary-type",
        choices=TERNARY_TYPES,
        help="GGUF type of ternary weights (ternary twin; default tq2_0)",
    )
    p.add_argument("--embed-type", default="f16", choices=DENSE_TYPES, help="GGUF type of embedding and head")
    p.add_argument(
        "--linear-type", default="f32", choices=DENSE_TYPES, help="GGUF type of non-ternary linears"
    )
    p.add_argument("--fp16", action="store_true", help="packed: store non-ternary tensors as fp16")
    p.add_argument(
        "--verify",
        type=Path,
        metavar="TOKENS_BIN",
        help="gguf: compare llama.cpp's logits with ours on this uint16 token file; writes OUT.verify.json",
    )
    p.add_argument("--verify-windows", type=int, default=8, help="seq_len windows compared by --verify")
    hf_export.add_arguments(p)


def run(args: argparse.Namespace, config: dict) -> None:
    with torch.no_grad():  # scoped: callers (tests) keep autograd on afterwards
        _run(args)


def _run(args: argparse.Namespace) -> None:
    require_causal(args.model, f"export ({args.format})")  # every runtime decodes causally
    if args.tokenizer:  # a foreign vocabulary would load and print the wrong words
        vocab = (read_json(Path(args.model) / "config.json").get("model") or {}).get("vocab_size")
        check_tokenizer(args.model, args.tokenizer, vocab)
    if args.format == "gguf" and args.verify and not args.verify.exists():  # before the export is written
        raise UserError(f"missing token file: {args.verify}")
    if args.format == "hf":
        hf_export.run(args)
    elif args.format == "gguf":
        if not args.tokenizer:
            raise UserError("--tokenizer is required for --format gguf")
        require("gguf")
        linear = read_json(Path(args.model) / "config.json").get("model", {}).get("linear")
        if args.ternary_type and linear == "fp32":  # it would silently write F32 linears
            raise UserError(
                f"{args.model} is the fp32 twin: --ternary-type does not apply (use --linear-type)"
            )
        ternary_type = args.ternary_type or TERNARY_TYPES[0]
        export_gguf(args.model, args.out, args.tokenizer, ternary_type, args.embed_type, args.linear_type)
        if args.verify:
            if not args.verify.exists():
                raise UserError(f"missing token file: {args.verify}")
            tokens = np.memmap(args.verify, dtype=np.uint16, mode="r")
            stats = logit_agreement(args.model, args.out, tokens, args.verify_windows)
            log.info("llama.cpp vs PyTorch logits: %s", stats)
            write_json(Path(str(args.out) + ".verify.json"), {**stats, "provenance": provenance()})
    else:
        export_packed(args.model, args.out, fp16=args.fp16)
