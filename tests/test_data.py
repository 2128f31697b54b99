import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import SHARED_DATA

from ternarylm.data import DOC_SEP, load_corpus, read_docs, split_docs
from ternarylm.encode import encode_docs, load_tokens
from ternarylm.io import UserError
from ternarylm.synthetic import SLOTS, synthetic_corpus, synthetic_pairs
from ternarylm.tokenizer import SEP_ID, SPECIALS, learn_vocab, load_tokenizer, train_tokenizer


def _local_cfg(tmp_path, **corpora):
    return {"data_source": "local", "data_dir": str(tmp_path), "corpora": corpora}


def test_local_tinystories_with_bom_and_separators(tmp_path):
    d = tmp_path / "tinystories"
    d.mkdir()
    (d / "train.txt").write_bytes(
        (
            "\ufeffOne story.\n" + DOC_SEP + "\nTwo\nlines.\n" + DOC_SEP + "\n\n" + DOC_SEP + "\nThree.\n"
        ).encode()
    )
    (d / "valid.txt").write_text("V1\n" + DOC_SEP + "\n")
    docs, files = load_corpus("tinystories", "train", _local_cfg(tmp_path))
    assert docs == ["One story.", "Two\nlines.", "Three."]
    assert files == [d / "train.txt"]
    docs, _ = load_corpus("tinystories", "train", _local_cfg(tmp_path, tinystories={"max_train_docs": 2}))
    assert len(docs) == 2


def test_shakespeare_split_is_disjoint_and_ordered(tmp_path):
    d = tmp_path / "shakespeare"
    d.mkdir()
    text = "\n\n".join(f"SPEAKER{i}:\nline {i}" for i in range(100)) + "\n"
    (d / "input.txt").write_text(text)
    cfg = _local_cfg(tmp_path, shakespeare={"val_fraction": 0.1})
    train, _ = load_corpus("shakespeare", "train", cfg)
    val, _ = load_corpus("shakespeare", "val", cfg)
    assert train[0].startswith("SPEAKER0") and val[-1].startswith("SPEAKER99")
    assert 85 <= len(train) <= 92 and len(train) + len(val) >= 100
    assert not set(train) & set(val)


@pytest.mark.parametrize(
    "content, message",
    [(None, "missing data file"), (b"  \n", "empty data file"), (b"\xff\xfe\x00bad", "not UTF-8")],
)
def test_bad_local_files_give_one_line_errors(tmp_path, content, message):
    d = tmp_path / "tinystories"
    d.mkdir()
    if content is not None:
        (d / "train.txt").write_bytes(content)
    with pytest.raises(UserError, match=message) as e:
        load_corpus("tinystories", "train", _local_cfg(tmp_path))
    assert "tinystories/train.txt" in str(e.value)


def test_writingprompts_missing_offline_explains(tmp_path):
    with pytest.raises(UserError, match="convergence_corpora"):
        load_corpus("writingprompts", "train", _local_cfg(tmp_path))


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data not present")
def test_real_tinystories_sample_counts():
    cfg = {"data_source": "local", "data_dir": str(SHARED_DATA), "corpora": {}}
    train, _ = load_corpus("tinystories", "train", cfg)
    val, _ = load_corpus("tinystories", "val", cfg)
    assert len(train) == 2817
    assert len(val) == 4301
    assert not any(DOC_SEP in d for d in train)


def test_synthetic_data_is_deterministic_and_balanced():
    assert synthetic_corpus(5, 0) == synthetic_corpus(5, 0) != synthetic_corpus(5, 1)
    pairs = synthetic_pairs(3000, 0)
    assert pairs == synthetic_pairs(3000, 0)
    pos = sum(label for _, _, label in pairs) / len(pairs)
    assert 0.6 < pos < 0.74


def test_synthetic_pairs_are_story_words_and_labels_follow_from_them():
    # the smoke fine-tunes are short because the story tokenizer keeps every pair word whole
    story_words = set(" ".join(synthetic_corpus(300, 0)).replace(".", " ").split())
    content_words = {w for pool in SLOTS.values() for w in pool}
    kinds = {"paraphrase": 0, "other event": 0, "other facts": 0}
    for a, b, label in synthetic_pairs(600, 5):
        wa, wb = (set(s.replace(".", " ").split()) for s in (a, b))
        assert wa | wb <= story_words, (a, b)
        ca, cb = wa & content_words, wb & content_words
        assert len(ca) == 4, a
        event_changed = bool({"showed", "played"} & wb)
        if label:
            assert ca == cb and not event_changed and a != b, (a, b)
            kinds["paraphrase"] += 1
        elif event_changed:
            assert ca == cb, (a, b)
            kinds["other event"] += 1
        else:
            assert ca.isdisjoint(cb), (a, b)
            kinds["other facts"] += 1
    assert min(kinds.values()) > 50, kinds


def test_split_docs_drops_blank_documents():
    assert split_docs(f"a\n{DOC_SEP}\n  \n{DOC_SEP}\nb") == ["a", "b"]


def test_tokenizer_training_is_deterministic(tmp_path):
    docs = synthetic_corpus(300, 0) + ["Hello, World! Unbelievable things happen."] * 3
    a = train_tokenizer(docs, 300).to_str()
    b = train_tokenizer(list(docs), 300).to_str()
    assert a == b
    tok = train_tokenizer(docs, 300)
    assert [tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2, 3, 4]
    assert 100 < tok.get_vocab_size() <= 300  # merges stop when no pair is seen twice
    enc = tok.encode("Hello, world")
    assert enc.tokens[0] == "hello" and "[CLS]" not in enc.tokens  # lowercased, no specials added
    assert tok.decode(enc.ids) == "hello, world"


def test_learn_vocab_merges_most_frequent_pair_first():
    n = len(SPECIALS)
    vocab = learn_vocab({"ab": 10, "cd": 3, "abd": 2}, vocab_size=n + 6, min_frequency=2)
    assert vocab[n : n + 4] == ["##b", "##d", "a", "c"]  # the alphabet, sorted
    assert vocab[n + 4 :] == ["ab", "cd"]  # (a,##b) seen 12 times, then (c,##d) 3 beats (ab,##d) 2
    # ties are broken by the pair's text, whatever the input order
    assert learn_vocab({"xy": 4, "ab": 4}, n + 5)[-1] == learn_vocab({"ab": 4, "xy": 4}, n + 5)[-1] == "ab"
    # pairs seen fewer than min_frequency times are not merged
    assert len(learn_vocab({"ab": 1}, n + 10)) == n + 2


def test_encode_writes_documents_separated_by_sep(tmp_path):
    docs = synthetic_corpus(20, 0)
    tok = train_tokenizer(docs, 200)
    ids = encode_docs(tok, docs[:3])
    assert (ids == SEP_ID).sum() == 3 and ids[-1] == SEP_ID
    assert ids.dtype == np.uint16


def test_tokenizer_and_tokenize_cli(tmp_path):
    text = tmp_path / "train.txt"
    text.write_text("".join(f"{d}\n{DOC_SEP}\n" for d in synthetic_corpus(50, 0)))
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"tokenizer": {"vocab_size": 200, "lowercase": True, "pretrained": None}}))
    run = lambda *a: subprocess.run([sys.executable, "-m", "ternarylm", *a], capture_output=True, text=True)  # noqa: E731
    r = run("tokenizer", "--config", str(cfg), "--train-text", str(text), "--out", str(tmp_path / "tok.json"))
    assert r.returncode == 0, r.stderr
    r = run(
        "tokenize",
        "--config",
        str(cfg),
        "--text",
        str(text),
        "--tokenizer",
        str(tmp_path / "tok.json"),
        "--out",
        str(tmp_path / "train.bin"),
    )
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "train.json").read_text())
    assert meta["n_docs"] == 50 and meta["vocab_size"] == 200
    assert len(load_tokens(tmp_path / "train.bin")) == meta["n_tokens"]
    assert len(read_docs(text)) == 50
    assert load_tokenizer(tmp_path / "tok.json").get_vocab_size() == 200
    # user mistake: one error line naming the file, exit 2, no traceback
    r = run(
        "tokenize",
        "--config",
        str(cfg),
        "--text",
        str(tmp_path / "nope.txt"),
        "--tokenizer",
        str(tmp_path / "tok.json"),
        "--out",
        str(tmp_path / "x.bin"),
    )
    assert r.returncode == 2
    assert "nope.txt" in r.stderr and "Traceback" not in r.stderr
