"""`ternarylm tokenizer`: an uncased WordPiece tokenizer (``tokenizers`` format) for the corpora.

The paper uses bert-base-uncased's 30,522-entry vocabulary; offline we learn a vocabulary of the
same size and kind from the main corpus' train split (or load an existing ``tokenizer.json``
with ``tokenizer.pretrained``).

Why not ``tokenizers.trainers.WordPieceTrainer``: it breaks ties between equally frequent
pairs in hash-map order, so two runs on the same text give different vocabularies (we measured
~50 differing entries on the TinyStories sample). The learner below is the same greedy
pair-merging scheme with ties broken by the pair's text, so a rerun gives a byte-identical
``tokenizer.json``. Normalization, pre-tokenization and encoding are ``tokenizers``' own BERT
components.
"""

from __future__ import annotations

import argparse
import heapq
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from ternarylm.io import UserError, write_text

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
log = logging.getLogger("ternarylm.tokenizer")


def _bert_tokenizer(vocab: dict[str, int], lowercase: bool) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    return tok


def count_words(docs: Iterable[str], lowercase: bool = True) -> Counter[str]:
    tok = _bert_tokenizer({s: i for i, s in enumerate(SPECIALS)}, lowercase)
    counts: Counter[str] = Counter()
    for doc in docs:
        text = tok.normalizer.normalize_str(doc)
        counts.update(w for w, _ in tok.pre_tokenizer.pre_tokenize_str(text))
    return counts


def _merge_symbol(a: str, b: str) -> str:
    return a + b[2:] if b.startswith("##") else a + b


def learn_vocab(word_counts: dict[str, int], vocab_size: int, min_frequency: int = 2) -> list[str]:
    """Deterministic WordPiece vocabulary: specials, the alphabet, then greedy pair merges.

    Each step merges the most frequent adjacent symbol pair (ties: smallest pair text first) —
    the scheme of ``WordPieceTrainer`` with a reproducible tie-break.
    """
    words = sorted(word_counts)
    freq = [word_counts[w] for w in words]
    seqs = [[w[0]] + [f"##{c}" for c in w[1:]] for w in words]
    alphabet = sorted({s for seq in seqs for s in seq})
    vocab = list(SPECIALS) + [s for s in alphabet if s not in SPECIALS]
    if len(vocab) > vocab_size:
        raise UserError(f"vocab_size {vocab_size} is smaller than the alphabet ({len(vocab)} symbols)")
    known = set(vocab)
    pair_count: defaultdict[tuple[str, str], int] = defaultdict(int)
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for i, seq in enumerate(seqs):
        for p in zip(seq, seq[1:]):
            pair_count[p] += freq[i]
            where[p].add(i)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg:
            continue  # stale heap entry
        if -neg < min_frequency:
            break
        merged = _merge_symbol(*pair)
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
        changed: set[tuple[str, str]] = set()
        for i in sorted(where.pop(pair, ())):
            seq, f = seqs[i], freq[i]
            for p in zip(seq, seq[1:]):
                pair_count[p] -= f
                where[p].discard(i)
                changed.add(p)
            out, j = [], 0
            while j < len(seq):
                if j + 1 < len(seq) and (seq[j], seq[j + 1]) == pair:
                    out.append(merged)
                    j += 2
                else:
                    out.append(seq[j])
                    j += 1
            seqs[i] = out
            for p in zip(out, out[1:]):
                pair_count[p] += f
                where[p].add(i)
                changed.add(p)
        pair_count.pop(pair, None)
        for p in sorted(changed):
            c = pair_count.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_count.pop(p, None)
    return vocab


def train_tokenizer(docs: Iterable[str], vocab_size: int, lowercase: bool = True) -> Tokenizer:
    vocab = learn_vocab(count_words(docs, lowercase), vocab_size)
    log.info("learned %d WordPiece entries (asked for %d)", len(vocab), vocab_size)
    return _bert_tokenizer({s: i for i, s in enumerate(vocab)}, lowercase)


def _read_tokenizer(path: Path) -> Tokenizer:
    if not path.is_file():
        raise UserError(f"missing tokenizer: {path}" if not path.exists() else f"{path}: not a file")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises plain Exception on bad JSON
        raise UserError(f"{path}: not a tokenizers JSON file ({e})") from e


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    tok = _read_tokenizer(path)
    for i, s in enumerate(SPECIALS):
        if tok.token_to_id(s) != i:
            raise UserError(
                f"{path}: special token {s} must have id {i} (got {tok.token_to_id(s)}); "
                f"give it as tokenizer.pretrained to the tokenizer stage, which renumbers the specials"
            )
    return tok


def load_pretrained(path: str | Path) -> Tokenizer:
    """A WordPiece tokenizer.json with SPECIALS renumbered 0..4, other pieces in their old order.

    bert-base-uncased has [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103; our token
    streams, models and GGUF export assume ids 0..4. Models here are pretrained from scratch, so
    only the pieces matter, not their ids.
    """
    import json

    path = Path(path)
    _read_tokenizer(path)  # one clear line for a missing or unreadable file
    spec = json.loads(path.read_text(encoding="utf-8"))
    model = spec.get("model") or {}
    if model.get("type") != "WordPiece":
        raise UserError(
            f"{path}: tokenizer.pretrained must be a WordPiece tokenizer, got {model.get('type')}"
        )
    vocab: dict[str, int] = model["vocab"]
    missing = [s for s in SPECIALS if s not in vocab]
    if missing:
        raise UserError(f"{path}: WordPiece vocab lacks the special tokens {', '.join(missing)}")
    order = SPECIALS + [p for p, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if p not in SPECIALS]
    model["vocab"] = new = {p: i for i, p in enumerate(order)}
    for added in spec.get("added_tokens") or []:  # they carry their own ids
        added["id"] = new.get(added["content"], added["id"])
    spec["post_processor"] = None  # BERT's [CLS] ... [SEP] template uses the old ids
    return Tokenizer.from_str(json.dumps(spec))


def local_pretrained(name: str | None) -> Path | None:
    """``tokenizer.pretrained`` as a local path (the tokenizer rule's input), or None for a hub id.
    A path-like value that does not exist is a user's typo, not a hub id to try online."""
    if not name:
        return None
    path = Path(name).expanduser()
    return path if path.exists() or path.suffix == ".json" or name.startswith((".", "/", "~")) else None


def fetch_pretrained(name: str, config: dict[str, Any] | None = None) -> Path:
    """``tokenizer.pretrained`` as a local tokenizer.json: an existing path as is, otherwise a
    Hugging Face hub id (e.g. bert-base-uncased, the paper's vocabulary) downloaded once, or read
    from ``hf_mirror``/<id>/tokenizer.json when the config names a mirror (ternarylm.hub).

    A hub id is pinned by the first download: the tokenizer rule runs again only when the id (the
    rule's params) changes, and the log names the snapshot revision and sha256 it used. To follow an
    upstream change, delete results/tokenizer/ (or give a local file, which is a rule input)."""
    local = local_pretrained(name)
    if local is not None:
        return local
    from ternarylm import hub

    if hub.mirror_dir(config or {}) is not None:
        mirrored = Path(hub.source_of(name, config or {})) / "tokenizer.json"
        if not mirrored.is_file():
            raise UserError(f"tokenizer.pretrained={name!r}: hf_mirror has no {mirrored}")
        return mirrored
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(name, "tokenizer.json"))
    except Exception as e:  # offline, unknown repo or no tokenizer.json: one line, not a traceback
        raise UserError(
            f"tokenizer.pretrained={name!r}: not a local file, and the HF hub gave no tokenizer.json "
            f"({type(e).__name__}); give a path to a tokenizer.json, set hf_mirror, or set it to null "
            "to learn one"
        ) from e


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-text", required=True, type=Path, help="train split written by `prepare`")
    p.add_argument("--out", required=True, type=Path)


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    from ternarylm.data import read_docs

    tcfg = config["tokenizer"]
    if tcfg.get("pretrained"):
        from ternarylm.identity import sha256_file

        path = fetch_pretrained(tcfg["pretrained"], config)
        tok = load_pretrained(path)
        # a hub download lives in .../snapshots/<revision>/tokenizer.json
        revision = path.parent.name if path.parent.parent.name == "snapshots" else "local file"
        log.info(
            "using pretrained tokenizer %s (%s, sha256 %s)", tcfg["pretrained"], revision, sha256_file(path)
        )
    else:
        tok = train_tokenizer(read_docs(args.train_text), int(tcfg["vocab_size"]), bool(tcfg["lowercase"]))
    write_text(args.out, tok.to_str(pretty=True))
