"""Document loading and per-document counts for the ``tinystories_ppl`` lm-eval task.

lm-eval calls ``load_docs(**metadata)``; its metadata holds the ``--model_args`` (so
``pretrained``, the export folder) merged with ``--metadata``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SEP = "[SEP]"


def _tokenizer(pretrained: str | None):
    if not pretrained or not (Path(pretrained) / "tokenizer.json").exists():
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(pretrained) / "tokenizer.json"))
    return tok


def load_docs(
    text: str | None = None,
    pretrained: str | None = None,
    max_docs: int | None = None,
    stream: bool = False,
    **_: Any,
) -> dict[str, Any]:
    """{"validation": Dataset(text, n_tokens)} from a ``ternarylm prepare`` split."""
    from datasets import Dataset

    from ternarylm.data import read_docs
    from ternarylm.io import UserError

    if not text:
        raise UserError('tinystories_ppl needs --metadata \'{"text": "path/to/val.txt"}\'')
    docs = read_docs(text)[: int(max_docs) if max_docs else None]
    if stream:  # one document: the [SEP]-separated stream `ternarylm evaluate` scores
        docs = [" ".join(f"{d} {SEP}" for d in docs)]
    tok = _tokenizer(pretrained)
    n_tokens = [len(tok.encode(d).ids) if tok else 0 for d in docs]
    return {"validation": Dataset.from_dict({"text": docs, "n_tokens": n_tokens})}


def process_results(doc: dict[str, Any], results: list[float]) -> dict[str, Any]:
    (loglikelihood,) = results
    words = len(re.split(r"\s+", doc["text"].strip()))
    n_bytes = len(doc["text"].encode("utf-8"))
    return {
        # without a tokenizer count this falls back to words (no token count to weigh by)
        "token_perplexity": (loglikelihood, doc["n_tokens"] or words),
        "word_perplexity": (loglikelihood, words),
        "byte_perplexity": (loglikelihood, n_bytes),
        "bits_per_byte": (loglikelihood, n_bytes),
    }
