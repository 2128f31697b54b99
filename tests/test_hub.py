"""HF hub loading, offline: ``datasets.load_dataset`` reads local folders laid out
like each repo the paper preset uses (ternarylm.hubfixtures), never the network."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ternarylm import hub, hubfixtures
from ternarylm.cli import main
from ternarylm.data import load_corpus, load_local, normalize_writingprompt
from ternarylm.glue import Example, load_split
from ternarylm.io import UserError, setup_logging
from ternarylm.preflight import preflight
from ternarylm.tokenizer import SPECIALS, fetch_pretrained, load_pretrained


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    import datasets

    for var in hub.OFFLINE_VARS:
        monkeypatch.setenv(var, "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return hubfixtures.write_mirror(tmp_path_factory.mktemp("hub"))


def _cfg(mirror, **extra):
    return {"data_source": "hf", "hf_mirror": str(mirror), "data_dir": str(mirror / "local"), **extra}


def _one_error_line(capfd) -> str:
    err = [ln for ln in capfd.readouterr().err.splitlines() if "ERROR" in ln]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_parquet_layouts_load_and_limits_apply(mirror):
    cfg = _cfg(mirror, corpora={"tinystories": {"max_train_docs": 50}})
    train, _ = load_corpus("tinystories", "train", cfg)
    val, _ = load_corpus("tinystories", "val", cfg)
    assert len(train) == 50 and len(val) == hubfixtures.SIZES["val_stories"]
    assert train[0].startswith("once upon a time") and not set(train) & set(val)
    wp, _ = load_corpus("writingprompts", "train", cfg)
    assert len(wp) == hubfixtures.SIZES["prompts"]
    assert not any("[ WP ]" in d or "<newline>" in d or " n't" in d or "``" in d for d in wp)


def test_shakespeare_hf_split_is_the_local_rule_on_the_same_text(mirror, tmp_path):
    """The hub's 90/5/5 script cut is glued back and cut by val_fraction at a newline, like input.txt."""
    parts = ["train", "validation", "test"]
    root = mirror / "karpathy" / "tiny_shakespeare" / "default"
    text = "".join(pq.read_table(root / p / "0000.parquet")["text"][0].as_py() for p in parts)
    (tmp_path / "shakespeare").mkdir()
    (tmp_path / "shakespeare" / "input.txt").write_text(text)
    for frac in (0.1, 0.3):
        corpora = {"shakespeare": {"val_fraction": frac}}
        local = {"data_source": "local", "data_dir": str(tmp_path), "corpora": corpora}
        for split in ("train", "val"):
            hf_docs, _ = load_corpus("shakespeare", split, _cfg(mirror, corpora=corpora))
            assert hf_docs == load_local("shakespeare", split, local)[0], (frac, split)
    small = load_corpus("shakespeare", "val", _cfg(mirror, corpora={"shakespeare": {"val_fraction": 0.1}}))[0]
    large = load_corpus("shakespeare", "val", _cfg(mirror, corpora={"shakespeare": {"val_fraction": 0.3}}))[0]
    assert 2 * len(small) < len(large)  # the config's fraction, not the script's 5 %


def test_script_only_repo_is_one_line_naming_the_repo(tmp_path, capfd):
    hubfixtures.script_only(tmp_path / "hub")
    cfg = _cfg(tmp_path / "hub")
    with pytest.raises(UserError, match=r"karpathy/tiny_shakespeare .*loading script"):
        load_corpus("shakespeare", "train", cfg)
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({**cfg, "corpora": {}}))
    argv = ["prepare", "--config", str(conf), "--corpus", "shakespeare", "--out-dir", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "karpathy/tiny_shakespeare" in _one_error_line(capfd)
    assert not (tmp_path / "o" / "train.txt").exists()


def test_missing_repo_split_or_column_is_one_line(mirror, tmp_path):
    with pytest.raises(UserError, match=r"no copy of roneneldan/TinyStories"):
        load_corpus("tinystories", "train", _cfg(tmp_path))
    bad = tmp_path / "bad"
    shutil.copytree(mirror / "euclaise", bad / "euclaise")
    for f in (bad / "euclaise" / "writingprompts" / "data").glob("validation-*"):
        f.unlink()
    with pytest.raises(UserError, match=r"euclaise/writingprompts: no split\(s\) \['validation'\]"):
        load_corpus("writingprompts", "val", _cfg(bad))
    shard = next((bad / "euclaise" / "writingprompts" / "data").glob("train-*"))
    pq.write_table(pa.table({"prompt": ["a"], "text": ["b"]}), shard)
    with pytest.raises(UserError, match=r"missing column\(s\) \['story'\]"):
        load_corpus("writingprompts", "train", _cfg(bad))


def test_writingprompts_normalisation():
    raw = "[ WP ] [ EU ] You are n't alone , `` he said '' . <newline> <newline> It 's ( really ) over !"
    assert normalize_writingprompt(raw) == "You aren't alone, \"he said\".\n\nIt's (really) over!"
    assert normalize_writingprompt("Plain text stays.") == "Plain text stays."


def test_glue_configs_load_from_the_glue_layout(mirror, monkeypatch):
    cfg = _cfg(mirror)
    for task in ("mrpc", "sst2", "cola"):
        for split, n in (("train", "glue"), ("dev", "glue_dev")):
            rows = load_split(task, split, cfg)
            assert len(rows) == hubfixtures.SIZES[n] and {r.label for r in rows} == {0, 1}
            assert (rows[0].text_b is not None) == (task == "mrpc")
    # the hub's MRPC test labels are hidden: the labeled test is the local MSR file
    test = load_split("mrpc", "test", cfg)
    assert len(test) == 32 and isinstance(test[0], Example)
    from ternarylm.glue import load_hf

    monkeypatch.setitem(hub.GLUE_SPLITS, "test", "test")  # the hub's test split: labels -1
    with pytest.raises(UserError, match=r"nyu-mll/glue/sst2 test has hidden labels"):
        load_hf("sst2", "test", cfg)


def test_bert_layout_tokenizer_from_the_mirror_is_renumbered(mirror):
    src = fetch_pretrained("bert-base-uncased", _cfg(mirror))
    vocab = json.loads(src.read_text())["model"]["vocab"]
    assert [vocab[s] for s in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 100, 101, 102, 103]
    tok = load_pretrained(src)
    assert [tok.token_to_id(s) for s in SPECIALS] == list(range(5))
    assert tok.get_vocab_size() == len(vocab)
    with pytest.raises(UserError, match=r"no copy of bert-base-cased"):
        fetch_pretrained("bert-base-cased", _cfg(mirror))


def test_preflight_resolves_everything_or_names_every_failure(mirror, tmp_path, capfd):
    cfg = _cfg(
        mirror,
        main_corpus="tinystories",
        convergence_corpora=["tinystories", "writingprompts", "shakespeare"],
        finetune={"tasks": ["mrpc", "sst2", "cola"]},
        tokenizer={"pretrained": "bert-base-uncased"},
    )
    setup_logging()  # a handler on this test's stderr (an earlier test's main() left one on its own)
    report = preflight(cfg)
    assert len(report) == 7 and "refs/convert/parquet" in report["corpus shakespeare"]
    # a missing repo fails the first, cheap pass (no datasets import); a script-only copy the second
    for broken, expect in (("missing", "roneneldan/TinyStories"), ("script", "loading script")):
        root = tmp_path / broken
        shutil.copytree(mirror, root)
        if broken == "missing":
            shutil.rmtree(root / "roneneldan")
        else:
            shutil.rmtree(root / "karpathy" / "tiny_shakespeare")
            hubfixtures.script_only(root)  # the hub's main branch instead of its parquet revision
        conf = tmp_path / f"{broken}.json"
        conf.write_text(json.dumps({**cfg, "hf_mirror": str(root)}))
        assert main(["preflight", "--config", str(conf), "--out", str(tmp_path / "p.json")]) == 2
        err = capfd.readouterr().err
        final = [ln for ln in err.splitlines() if "ERROR ternarylm:" in ln]
        assert len(final) == 1 and expect in final[0] and "more above" not in final[0], err
        assert "Traceback" not in err and not (tmp_path / "p.json").exists()


def test_unreachable_hub_is_one_line_naming_the_repo(monkeypatch):
    """No mirror and no network (offline mode stands in for it): one line per repo, no retries."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cfg = {"data_source": "hf", "corpora": {}}
    with pytest.raises(UserError, match=r"roneneldan/TinyStories: the HF hub cannot be reached .*hf_mirror"):
        load_corpus("tinystories", "train", cfg)
    with pytest.raises(UserError, match=r"nyu-mll/glue: the HF hub cannot be reached"):
        load_split("cola", "train", cfg)
