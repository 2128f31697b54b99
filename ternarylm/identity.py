"""What an artifact was made from, and the checks that refuse a mismatch in one line.

* Checkpoint fingerprints carry the *content* of the data, not only its size: a resume on a
  ``train.bin`` of equal length but other tokens, or on relabelled fine-tuning examples, starts
  afresh (logged). A fingerprint is ``CONFIG:DATA`` so the log can say which of the two changed.
* A model folder's ``config.json`` holds an ``identity`` record (the tokenizer's sha256 and vocab
  size, the weights' sha256), written by :func:`ternarylm.model.save_model`; every stage that
  loads a model checks the weights against it (finite corruption, or a config.json from the other
  twin, is refused) and every stage that pairs a model with a tokenizer checks that pair.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from ternarylm.io import UserError

log = logging.getLogger("ternarylm.identity")
RECORD = "identity"  # the key of config.json that holds the record


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """sha256 of a JSON-able object (fine-tuning examples: ids and labels)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


# --- checkpoint fingerprints -------------------------------------------------------------------
def token_files_id(*bins: str | Path) -> dict[str, Any]:
    """Content of token streams: each .bin's own sha256 and its meta's text/tokenizer hashes."""
    out: dict[str, Any] = {}
    for b in map(Path, bins):
        meta_path = b.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        out[b.name] = {
            "sha256": sha256_file(b),
            "text_sha256": meta.get("text_sha256"),
            "tokenizer_sha256": meta.get("tokenizer_sha256"),
        }
    return out


def with_data(config_fp: str, data: Any) -> str:
    """The checkpoint fingerprint ``CONFIG:DATA`` (DATA: a short hash of the data's content)."""
    return f"{config_fp}:{sha256_json(data)[:16]}"


def may_resume(saved: Any, fp: str, path: Path, data_what: str) -> bool:
    """Whether a checkpoint saved under fingerprint ``saved`` may be resumed under ``fp``; when not,
    one log line says why (the data's content or the config changed)."""
    if saved == fp:
        return True
    parts = str(saved).split(":")
    if len(parts) == 2 and parts[0] == fp.split(":")[0]:
        log.warning(
            "checkpoint %s was made on other data (content of %s changed); starting from scratch",
            path,
            data_what,
        )
    else:
        log.warning("checkpoint %s belongs to another config; starting from scratch", path)
    return False


# --- the model folder's record -----------------------------------------------------------------
def tokenizer_id(tokenizer_path: str | Path | None, vocab_size: int | None = None) -> dict[str, Any]:
    """sha256 and vocab size of a tokenizer.json (``vocab_size``: when already known)."""
    if tokenizer_path is None:
        return {"tokenizer_sha256": None, "vocab_size": vocab_size}
    if vocab_size is None:
        from ternarylm.tokenizer import load_tokenizer

        vocab_size = load_tokenizer(str(tokenizer_path)).get_vocab_size()
    return {"tokenizer_sha256": sha256_file(tokenizer_path), "vocab_size": int(vocab_size)}


def tokenizer_of_tokens(train_bin: str | Path, tokenizer_path: str | Path | None) -> dict[str, Any]:
    """The tokenizer half of a pretrained model's record: the tokenizer the training tokens were
    made with (their meta's hash), else the ``--tokenizer`` file's."""
    meta_path = Path(train_bin).with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    sha = meta.get("tokenizer_sha256")
    if sha is None and tokenizer_path:
        sha = sha256_file(tokenizer_path)
    return {"tokenizer_sha256": sha}


def record_of(model_dir: str | Path) -> dict[str, Any] | None:
    """The identity record of a model folder, or None (a folder saved before records existed)."""
    path = Path(model_dir) / "config.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rec = meta.get(RECORD) if isinstance(meta, dict) else None
    return rec if isinstance(rec, dict) else None


def check_weights(model_dir: str | Path) -> None:
    """Refuse weights whose sha256 differs from the folder's record (corrupted, or another run's)."""
    rec = record_of(model_dir)
    want = (rec or {}).get("weights_sha256")
    weights = Path(model_dir) / "model.safetensors"
    if want and weights.is_file() and sha256_file(weights) != want:
        raise UserError(
            f"{weights}: sha256 differs from the one its config.json records (corrupted, or the "
            "weights of another model); retrain or restore the folder"
        )


def check_tokenizer(model_dir: str | Path, tokenizer_path: str | Path | None, vocab_size: int | None) -> None:
    """Refuse a tokenizer that is not the model's: another sha256 than the one its record holds (a
    pretrained model's), or, for a folder without one (built by hand), more ids than the model's
    ``vocab_size`` (a smaller vocabulary is then taken as padded, as the GGUF export pads it)."""
    if tokenizer_path is None:
        return
    rec = record_of(model_dir) or {}
    want_sha = rec.get("tokenizer_sha256")
    got = tokenizer_id(tokenizer_path)
    if want_sha and got["tokenizer_sha256"] != want_sha:
        raise UserError(
            f"{tokenizer_path} is not the tokenizer {model_dir} was trained with (sha256 "
            f"{got['tokenizer_sha256'][:12]} vs recorded {want_sha[:12]}; vocab {got['vocab_size']} vs "
            f"{rec.get('vocab_size', vocab_size)})"
        )
    if vocab_size is not None and got["vocab_size"] > vocab_size:
        raise UserError(
            f"{tokenizer_path}: vocab of {got['vocab_size']} does not match the model's {vocab_size} "
            f"({model_dir}); pass the tokenizer it was trained with"
        )


def check_model(model_dir: str | Path, tokenizer_path: str | Path | None) -> None:
    """Both checks for a stage that reads the folder through another loader (bench workers)."""
    check_weights(model_dir)
    try:
        vocab = json.loads((Path(model_dir) / "config.json").read_text())["model"]["vocab_size"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # the loader that follows names a missing or broken config.json
    check_tokenizer(model_dir, tokenizer_path, vocab)


def check_tokens(model_dir: str | Path, bin_path: str | Path) -> None:
    """Refuse a token stream made with another tokenizer than the model's (both recorded)."""
    want = (record_of(model_dir) or {}).get("tokenizer_sha256")
    meta_path = Path(bin_path).with_suffix(".json")
    try:
        got = json.loads(meta_path.read_text()).get("tokenizer_sha256")
    except (OSError, ValueError, AttributeError):
        return  # load_tokens names a missing or broken meta
    if want and got and want != got:
        raise UserError(
            f"{bin_path} was tokenized with another tokenizer than {model_dir} was trained with "
            f"(sha256 {got[:12]} vs {want[:12]})"
        )
