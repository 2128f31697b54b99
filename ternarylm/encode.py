"""`ternarylm tokenize`: encode a prepared split to a flat uint16 token stream.

``{out}.bin`` holds the ids of every document followed by ``[SEP]`` (the document separator);
``{out}.json`` records token/document counts, vocab size and the sha256 of the input text and
tokenizer, so downstream stages can check what they read.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ternarylm.data import read_docs, sha256_file
from ternarylm.io import UserError, atomic_path, read_json, write_json
from ternarylm.provenance import provenance
from ternarylm.tokenizer import SEP_ID, load_tokenizer

log = logging.getLogger("ternarylm.encode")
BATCH = 1024


def encode_docs(tok, docs: list[str]) -> np.ndarray:
    ids: list[int] = []
    for start in range(0, len(docs), BATCH):
        for enc in tok.encode_batch(docs[start : start + BATCH]):
            ids.extend(enc.ids)
            ids.append(SEP_ID)
    return np.asarray(ids, dtype=np.uint16)


def load_tokens(bin_path: str | Path, vocab_size: int | None = None) -> np.ndarray:
    """Memory-map a token stream written by this stage (checked against its .json meta).

    Every id must be below the vocab of the .json (at most ``vocab_size``, the model's, when given):
    checked once here rather than as an IndexError deep inside training.
    """
    bin_path = Path(bin_path)
    if not bin_path.exists():
        raise UserError(f"missing token file: {bin_path}")
    if not bin_path.is_file():
        raise UserError(f"{bin_path}: not a token file (a directory?)")
    meta = read_json(bin_path.with_suffix(".json"))
    size = bin_path.stat().st_size
    if size % 2:
        raise UserError(f"{bin_path}: {size} bytes is not a whole number of uint16 tokens (rerun tokenize)")
    if size == 0:
        raise UserError(f"{bin_path}: empty token file (rerun tokenize)")
    arr = np.memmap(bin_path, dtype=np.uint16, mode="r")
    if arr.shape[0] != meta["n_tokens"]:
        raise UserError(
            f"{bin_path}: {arr.shape[0]} tokens but its .json says {meta['n_tokens']} (rerun tokenize)"
        )
    # streams written by hand (tests, other tools) may lack it: then the model's vocab is the bound
    meta_vocab = int(meta.get("vocab_size") or vocab_size or 2**16)
    # a model may pad its vocab (a multiple of 64 for the GPU), never have fewer ids than the stream
    if vocab_size is not None and meta_vocab > vocab_size:
        raise UserError(
            f"{bin_path}: tokenized with a vocab of {meta_vocab}, the model has only {vocab_size} "
            f"(tokenizer and model do not match)"
        )
    top = int(arr.max())
    if top >= meta_vocab:
        raise UserError(f"{bin_path}: token id {top} is outside the vocab of {meta_vocab} (rerun tokenize)")
    return arr


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", required=True, type=Path)
    p.add_argument("--tokenizer", required=True, type=Path)
    p.add_argument(
        "--out", required=True, type=Path, help="output .bin (a .json with the same stem is written too)"
    )


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    tok = load_tokenizer(args.tokenizer)
    if tok.get_vocab_size() > 65535:
        raise UserError(f"{args.tokenizer}: vocab of {tok.get_vocab_size()} does not fit uint16")
    docs = read_docs(args.text)
    ids = encode_docs(tok, docs)
    with atomic_path(args.out) as tmp:
        ids.tofile(tmp)
    unk = int((ids == tok.token_to_id("[UNK]")).sum())
    write_json(
        args.out.with_suffix(".json"),
        {
            "n_tokens": int(ids.shape[0]),
            "n_docs": len(docs),
            "vocab_size": tok.get_vocab_size(),
            "unk_frac": unk / max(1, ids.shape[0]),
            "text_sha256": sha256_file(args.text),
            "tokenizer_sha256": sha256_file(args.tokenizer),
            "provenance": provenance(),
        },
    )
    log.info(
        "%s: %d documents -> %d tokens (%.3f%% [UNK])",
        args.text,
        len(docs),
        ids.shape[0],
        100 * unk / max(1, len(ids)),
    )
