"""The tokenizer stage with a pretrained vocabulary: bert-base-uncased's layout renumbered so the
specials come first, fetched from the HF hub (monkeypatched: no network), and its failures as one line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from helpers import one_error_line

from ternarylm.cli import main
from ternarylm.synthetic import synthetic_corpus
from ternarylm.tokenizer import SPECIALS, load_tokenizer, train_tokenizer


@pytest.fixture(autouse=True)
def _forget_cli_logging():
    """main() points the root logger at this test's captured stderr, which pytest closes after it."""
    yield
    logging.root.handlers.clear()


def _bert_layout_tokenizer(path: Path) -> list[str]:
    """A tokenizer.json with bert-base-uncased's special ids: [PAD]=0, [unused*], [UNK]=100..[MASK]=103."""
    from tokenizers import AddedToken

    learned = train_tokenizer(synthetic_corpus(50, 0), 120)
    pieces = [p for p, _ in sorted(learned.get_vocab().items(), key=lambda kv: kv[1]) if p not in SPECIALS]
    order = ["[PAD]", *[f"[unused{i}]" for i in range(99)], "[UNK]", "[CLS]", "[SEP]", "[MASK]", *pieces]
    from ternarylm.tokenizer import _bert_tokenizer

    tok = _bert_tokenizer({p: i for i, p in enumerate(order)}, True)
    tok.add_special_tokens([AddedToken(s, special=True) for s in SPECIALS])
    path.write_text(tok.to_str())
    return pieces


def test_pretrained_tokenizer_with_bert_ids_is_renumbered(tmp_path):
    src = tmp_path / "bert.json"
    pieces = _bert_layout_tokenizer(src)
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps({"tokenizer": {"vocab_size": 30522, "lowercase": True, "pretrained": str(src)}})
    )
    (tmp_path / "train.txt").write_text("unused\n")
    out = tmp_path / "tok.json"
    assert (
        main(
            [
                "tokenizer",
                "--config",
                str(cfg),
                "--train-text",
                str(tmp_path / "train.txt"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    tok = load_tokenizer(out)  # specials now 0..4
    assert [tok.token_to_id(s) for s in SPECIALS] == list(range(5))
    assert tok.get_vocab_size() == 104 + len(pieces)
    text = synthetic_corpus(3, 1)[0]
    from tokenizers import Tokenizer

    old = Tokenizer.from_file(str(src))
    assert tok.encode(text).tokens == old.encode(text).tokens  # same pieces, new ids
    assert tok.encode("[SEP]").ids == [3]


def _tokenizer_stage(tmp_path: Path, pretrained: str) -> tuple[int, Path]:
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps({"tokenizer": {"vocab_size": 30522, "lowercase": True, "pretrained": pretrained}})
    )
    (tmp_path / "train.txt").write_text("unused\n")
    out = tmp_path / "tok.json"
    argv = ["tokenizer", "--config", str(cfg), "--train-text", str(tmp_path / "train.txt"), "--out", str(out)]
    return main(argv), out


def test_pretrained_hub_id_is_downloaded_and_renumbered(tmp_path, monkeypatch):
    """config.yaml's `pretrained: bert-base-uncased` is a hub id: fetched once, then renumbered."""
    import huggingface_hub

    src = tmp_path / "hub" / "tokenizer.json"
    src.parent.mkdir()
    pieces = _bert_layout_tokenizer(src)
    asked = []
    monkeypatch.setattr(
        huggingface_hub, "hf_hub_download", lambda repo, name: asked.append((repo, name)) or src
    )
    rc, out = _tokenizer_stage(tmp_path, "bert-base-uncased")
    assert rc == 0 and asked == [("bert-base-uncased", "tokenizer.json")]
    tok = load_tokenizer(out)
    assert [tok.token_to_id(s) for s in SPECIALS] == list(range(5)) and tok.get_vocab_size() == 104 + len(
        pieces
    )


def test_pretrained_hub_offline_or_typo_is_one_line(tmp_path, monkeypatch, capfd):
    import huggingface_hub

    def offline(repo, name):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    rc, out = _tokenizer_stage(tmp_path, "bert-base-uncased")
    assert rc == 2 and not out.exists()
    assert "HF hub gave no tokenizer.json (OSError)" in one_error_line(capfd)
    # a path that does not exist is a typo: named as missing, never tried on the hub
    rc, out = _tokenizer_stage(tmp_path, str(tmp_path / "nope.json"))
    assert rc == 2 and "missing tokenizer" in one_error_line(capfd)
