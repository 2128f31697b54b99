"""Fine-tuning stage: task loaders, pair encoding, metrics, majority baseline, end to end.

- metric functions against hand-computed confusion-matrix values;
- ``[CLS] a [SEP] b [SEP]`` encoding: specials placed, the longer sentence trimmed first, both kept;
- local GLUE loaders: row counts and label balance on the real files in ../shared/data (TERNARYLM_DATA overrides)
  (skipped where that folder is absent) and one-line errors on bad files;
- a tiny random twin fine-tuned on tiny synthetic pairs writes metrics.json / curve.csv with the
  documented keys; CPU runs are deterministic and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import SHARED_DATA

from ternarylm import classifier as clf
from ternarylm import finetune as ft
from ternarylm.glue import Example, load_split, read_local
from ternarylm.io import UserError

DATA = Path(os.environ.get("TERNARYLM_DATA") or SHARED_DATA)  # the repository's sibling shared/data

torch.set_num_threads(1)


# --- metrics -------------------------------------------------------------------------------


def test_metrics_match_hand_computed_values():
    y_true = [1, 1, 1, 1, 0, 0, 0, 1, 0, 1]
    y_pred = [1, 1, 0, 1, 0, 1, 0, 1, 0, 0]
    # tp=4, fn=2, fp=1, tn=3
    assert clf.accuracy(y_true, y_pred) == pytest.approx(70.0)
    assert clf.f1_score(y_true, y_pred) == pytest.approx(100 * 2 * 4 / (2 * 4 + 1 + 2))  # 72.727
    expected_mcc = (4 * 3 - 1 * 2) / math.sqrt((4 + 1) * (4 + 2) * (3 + 1) * (3 + 2))
    assert clf.mcc(y_true, y_pred) == pytest.approx(100 * expected_mcc)  # 40.82
    m = clf.classification_metrics(y_true, y_pred)
    assert m["n"] == 10 and m["accuracy"] == pytest.approx(70.0)


def test_metric_edge_cases():
    assert clf.mcc([1, 0, 1], [1, 1, 1]) == 0.0  # constant predictor
    assert clf.f1_score([0, 0], [0, 0]) == 0.0  # no positives anywhere
    assert clf.mcc([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(100.0)
    assert clf.mcc([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-100.0)
    with pytest.raises(ValueError):
        clf.accuracy([1, 0], [1])


def test_majority_baseline_reproduces_mrpc_dev_numbers():
    # MRPC dev: 279 positive of 408 -> "always paraphrase" F1 81.22, acc 68.38 (data README)
    labels = [1] * 279 + [0] * 129
    maj = clf.majority_label([1] * 2474 + [0] * 1194)  # MRPC train balance
    assert maj == 1
    preds = [maj] * len(labels)
    assert clf.f1_score(labels, preds) == pytest.approx(81.22, abs=0.005)
    assert clf.accuracy(labels, preds) == pytest.approx(68.38, abs=0.005)
    assert clf.mcc(labels, preds) == 0.0
    assert clf.majority_label([0, 1]) == 0  # tie -> smaller label


# --- encoding ------------------------------------------------------------------------------

CLS, SEP = 2, 3


def test_pair_encoding_places_special_tokens():
    ids = clf.encode_ids([10, 11], [20, 21, 22], max_len=16, cls=CLS, sep=SEP)
    assert ids == [CLS, 10, 11, SEP, 20, 21, 22, SEP]
    assert clf.encode_ids([10, 11, 12], None, max_len=16, cls=CLS, sep=SEP) == [CLS, 10, 11, 12, SEP]
    assert clf.encode_ids(list(range(10, 30)), None, max_len=6, cls=CLS, sep=SEP) == [
        CLS,
        10,
        11,
        12,
        13,
        SEP,
    ]


def test_pair_truncation_trims_longer_first_and_keeps_both():
    a, b = list(range(100, 140)), list(range(200, 210))  # 40 + 10 tokens
    ids = clf.encode_ids(a, b, max_len=23, cls=CLS, sep=SEP)
    assert len(ids) == 23
    assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 2
    cut = ids.index(SEP)
    kept_a, kept_b = ids[1:cut], ids[cut + 1 : -1]
    assert kept_b == b  # the short sentence is untouched
    assert kept_a == a[:10]  # the long one keeps its beginning, trimmed to 20 - 10
    # both long: trimmed to (almost) equal halves, each keeps its first tokens
    a2, b2 = clf.truncate_pair(list(range(50)), list(range(100, 130)), budget=9)
    assert (len(a2), len(b2)) == (5, 4) or (len(a2), len(b2)) == (4, 5)
    assert a2 == list(range(len(a2))) and b2 == list(range(100, 100 + len(b2)))
    # extreme: both sentences still present
    a3, b3 = clf.truncate_pair([1] * 30, [2] * 30, budget=2)
    assert a3 == [1] and b3 == [2]


def test_encode_examples_with_a_real_tokenizer(tiny_tokenizer):
    from ternarylm.synthetic import synthetic_pairs
    from ternarylm.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_tokenizer)
    # sentences in the tokenizer's own words (it learned them from these pairs): one short, one long
    (a, b, _), *_ = synthetic_pairs(1, 7)
    ex = [Example(a, f"{b} " * 20, 1)]
    (ids,) = clf.encode_examples(tok, ex, max_len=48)
    assert len(tok.encode(a, add_special_tokens=False).ids) < 48 // 2
    assert len(ids) == 48 and ids[0] == tok.token_to_id("[CLS]") and ids[-1] == tok.token_to_id("[SEP]")
    first = tok.encode(ex[0].text_a, add_special_tokens=False).ids
    assert ids[1 : 1 + len(first)] == first  # the short first sentence survives whole
    assert ids[1 + len(first)] == tok.token_to_id("[SEP]")


def test_pooling_ignores_right_padding():
    from ternarylm.model import build_model

    cfg = dict(vocab_size=64, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64, seq_len=16, dropout=0.0)
    for pooling in ("last", "mean"):
        model = clf.SequenceClassifier(build_model(cfg, seed=0), pooling, dropout=0.0).eval()
        seq = [CLS, 9, 10, 11, SEP]
        idx1, len1 = clf.pad_batch([seq], pad=0)
        idx2, len2 = clf.pad_batch([seq, seq + [12, 13, 14, SEP]], pad=0)
        out1, out2 = model(idx1, len1), model(idx2, len2)
        torch.testing.assert_close(out1[0], out2[0], rtol=1e-5, atol=1e-5)


def test_bucketed_batches_cover_every_example_once_with_little_padding():
    gen = torch.Generator().manual_seed(0)
    lengths = [(i * 37) % 101 + 5 for i in range(1000)]
    batches = clf.bucketed_batches(lengths, 16, gen, pool=10)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert sorted(len(b) for b in batches) == [8] + [16] * 62  # 6 pools of 160 + one of 40
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded < 1.1 * sum(lengths)  # nearly no padding inside length-sorted pools
    again = clf.bucketed_batches(lengths, 16, torch.Generator().manual_seed(0), pool=10)
    assert again == batches  # a seed fixes the order


# --- loaders -------------------------------------------------------------------------------

needs_data = pytest.mark.skipif(
    not (DATA / "mrpc" / "train.tsv").exists(), reason=f"no local GLUE data at {DATA}"
)


@needs_data
@pytest.mark.parametrize(
    "task,split,rows,positives",
    [
        ("mrpc", "train", 3668, 2474),
        ("mrpc", "dev", 408, 279),
        ("mrpc", "test", 1725, 1147),
        ("cola", "train", 8551, 6023),
        ("cola", "dev", 1043, 721),
        ("sst2", "train", 67349, 37569),
        ("sst2", "dev", 872, 444),
    ],
)
def test_local_loader_row_counts(task, split, rows, positives):
    ex = load_split(task, split, {"data_source": "local", "data_dir": str(DATA)})
    assert len(ex) == rows
    assert sum(e.label for e in ex) == positives
    assert all((e.text_b is not None) == (task == "mrpc") for e in ex)


@needs_data
def test_local_loader_keeps_quotes_and_strips_bom():
    ex = load_split("mrpc", "train", {"data_source": "local", "data_dir": str(DATA)})
    assert ex[0].text_a.startswith("Amrozi accused his brother") and '"the witness"' in ex[0].text_a
    dev = load_split("mrpc", "dev", {"data_source": "local", "data_dir": str(DATA)})
    assert dev[0].text_b.startswith('"The foodservice')  # an unbalanced quote stays in the sentence


def test_loader_errors_name_the_file(tmp_path):
    missing = tmp_path / "mrpc" / "train.tsv"
    with pytest.raises(UserError, match=str(missing)):
        load_split("mrpc", "train", {"data_source": "local", "data_dir": str(tmp_path)})
    bad_cols = tmp_path / "bad.tsv"
    bad_cols.write_text("\ufeffQuality\tID\tString\n1\t2\tx\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.tsv: wrong columns"):
        read_local("mrpc", bad_cols)
    short_row = tmp_path / "short.tsv"
    short_row.write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t2\t3\tonly one\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"short\.tsv: line 2: expected 5"):
        read_local("mrpc", short_row)
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes("text\tlabel\ncaf\xe9 au lait\t1\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.tsv: not valid UTF-8"):
        read_local("sst2", latin1)
    bad_label = tmp_path / "cola.tsv"
    bad_label.write_text("src\t2\t\tA sentence.\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"cola\.tsv: line 1: label must be 0 or 1"):
        read_local("cola", bad_label)
    empty = tmp_path / "empty.tsv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(UserError, match=r"empty\.tsv: empty file"):
        read_local("cola", empty)


def test_hf_source_uses_glue_fields_and_local_labeled_mrpc_test(monkeypatch, tmp_path):
    """GLUE from a folder laid out like nyu-mll/glue (tests/test_hub.py has the other hub layouts)."""
    import datasets

    from ternarylm import hubfixtures

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    mirror = hubfixtures.write_mirror(tmp_path / "hub")
    calls = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a[1:]) or real(*a, **k))
    cfg = {"data_source": "hf", "data_dir": str(tmp_path), "hf_mirror": str(mirror)}
    dev = load_split("mrpc", "dev", cfg)
    import pyarrow.parquet as pq

    first = pq.read_table(next((mirror / "nyu-mll" / "glue" / "mrpc").glob("validation-*"))).to_pylist()[0]
    assert dev[0] == Example(first["sentence1"], first["sentence2"], first["label"])
    assert load_split("sst2", "train", cfg)[0].text_b is None
    assert calls == [("mrpc",), ("sst2",)]
    # GLUE's MRPC test labels are hidden: the labeled test split is the local MSR file
    with pytest.raises(UserError, match=r"mrpc/test_labeled\.txt"):
        load_split("mrpc", "test", cfg)
    (tmp_path / "mrpc").mkdir()
    (tmp_path / "mrpc" / "test_labeled.txt").write_text(
        '\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1\t2\tHe said "hi".\tShe left.\n',
        encoding="utf-8",
    )
    assert load_split("mrpc", "test", cfg) == [Example('He said "hi".', "She left.", 0)]
    assert len(calls) == 2  # the test split never touches the hub


def test_synthetic_source_maps_mrpc_to_paraphrase_pairs():
    cfg = {"data_source": "synthetic"}
    train, dev, test = (load_split("mrpc", s, cfg) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (2000, 400, 400)
    assert train[0] != dev[0] and dev[0] != test[0]  # distinct seeds per split
    assert 0.55 < sum(e.label for e in train) / len(train) < 0.8
    with pytest.raises(UserError, match="only the mrpc task"):
        load_split("cola", "train", cfg)
    with pytest.raises(UserError, match="no labeled 'test'"):
        load_split("sst2", "test", cfg)


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory) -> Path:
    from ternarylm.synthetic import synthetic_pairs
    from ternarylm.tokenizer import train_tokenizer

    docs = [f"{a} {b}" for a, b, _ in synthetic_pairs(300, 7)]
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    path.write_text(train_tokenizer(docs, 200).to_str(), encoding="utf-8")
    return path


def _save_tiny_twin(out: Path, tokenizer: Path, init_seed: int) -> Path:
    """A 1-layer ternary backbone sized to ``tokenizer``, initialised from ``init_seed``."""
    from ternarylm.model import build_model, save_model
    from ternarylm.tokenizer import load_tokenizer

    vocab = load_tokenizer(tokenizer).get_vocab_size()
    cfg = dict(
        vocab_size=vocab, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64, seq_len=48, linear="ternary"
    )
    save_model(build_model(cfg, seed=init_seed), out, {"variant": "ternary", "seed": 0})
    return out


@pytest.fixture(scope="module")
def tiny_twin(tmp_path_factory, tiny_tokenizer) -> Path:
    return _save_tiny_twin(tmp_path_factory.mktemp("twin"), tiny_tokenizer, init_seed=0)


@pytest.fixture()
def tiny_data(monkeypatch):
    """Shrink the synthetic task so an end-to-end run takes about a second."""
    from ternarylm import glue

    monkeypatch.setattr(glue, "SYNTHETIC_SIZES", {"train": 120, "dev": 40, "test": 40})


TINY_CONFIG = {
    "data_source": "synthetic",
    "train": {"device": "cpu", "threads": 1},
    "finetune": {"tasks": ["mrpc"], "epochs": 2, "batch_size": 16, "lr": 1e-3, "max_len": 64},
}


def test_end_to_end_writes_metrics_and_curve(
    tmp_path, tiny_twin, tiny_tokenizer, tiny_data, capfd, monkeypatch
):
    from ternarylm.cli import main

    out = tmp_path / "ft"
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(TINY_CONFIG))
    args = ["finetune", "--config", str(cfg_path), "--task", "mrpc", "--model", str(tiny_twin)]
    args += ["--tokenizer", str(tiny_tokenizer), "--out", str(out), "--seed", "3"]
    monkeypatch.setattr(sys, "argv", ["/venv/bin/ternarylm", *args])  # as the console script sees them
    rc = main(args)
    assert rc == 0
    # one progress line per epoch at least (and about one a minute within long epochs)
    progress = [
        line.split(": ", 1)[1]
        for line in capfd.readouterr().err.splitlines()
        if ": finetune mrpc ternary" in line
    ]
    assert progress[0].startswith("finetune mrpc ternary s3: step 7/14 (50%) loss") and "eta" in progress[0]
    assert progress[-1].startswith("finetune mrpc ternary s3: step 14/14 (100%) loss")
    m = json.loads((out / "metrics.json").read_text())
    for key in ("task", "variant", "seed", "backbone", "selected_epoch", "dev", "test", "majority", "splits"):
        assert key in m, key
    assert (m["task"], m["variant"], m["seed"], m["backbone"]) == ("mrpc", "ternary", 3, str(tiny_twin))
    assert m["backbone_linear"] == "ternary" and m["n_bitlinear"] == 7  # QAT continues: BitLinear kept
    assert m["primary_metric"] == "f1" and m["selected_epoch"] in (1, 2)
    for split, n in (("dev", 40), ("test", 40)):
        assert m[split]["n"] == n and m[split]["split"] == split
        assert set(m[split]) >= {"f1", "accuracy", "mcc", "loss"}
        assert m["majority"][split]["n"] == n
    prov = m["provenance"]  # train.threads (1) is finetune's default
    assert prov["command"] == "ternarylm " + " ".join(args)
    assert (prov["device"], prov["threads"]) == ("cpu", 1)
    assert m["splits"]["train"]["n"] + m["splits"]["heldout"]["n"] == 120
    assert m["splits"]["heldout"]["n"] == 12
    labels = [e.label for e in load_split("mrpc", "dev", {"data_source": "synthetic"})]
    maj = [m["majority"]["label"]] * len(labels)
    assert m["majority"]["dev"]["f1"] == pytest.approx(clf.f1_score(labels, maj))
    with open(out / "curve.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert list(rows[0]) == ft.CURVE_FIELDS
    sel = rows[m["selected_epoch"] - 1]
    assert float(sel["heldout_f1_acc"]) == pytest.approx(m["heldout"]["f1_acc"])  # selected on held-out
    assert not list(out.glob(".*.tmp"))  # atomic writes left no temporaries


def test_cpu_runs_are_deterministic_and_resume_exactly(
    tmp_path, tiny_twin, tiny_tokenizer, tiny_data, caplog
):
    cfg = {**TINY_CONFIG, "finetune": {**TINY_CONFIG["finetune"], "epochs": 3, "pooling": "mean"}}
    m1, c1 = ft.finetune("mrpc", tiny_twin, tiny_tokenizer, cfg, seed=1)
    m2, c2 = ft.finetune("mrpc", tiny_twin, tiny_tokenizer, cfg, seed=1)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(c1) == strip(c2) and m1["dev"] == m2["dev"]
    # interrupted after epoch 1, then rerun with the same checkpoint folder
    ckpt = tmp_path / "ckpt"
    ft.finetune("mrpc", tiny_twin, tiny_tokenizer, cfg, seed=1, ckpt_dir=ckpt, stop_after_epoch=1)
    assert (ckpt / "finetune_state.pt").exists()
    with caplog.at_level("INFO"):
        m3, c3 = ft.finetune("mrpc", tiny_twin, tiny_tokenizer, cfg, seed=1, ckpt_dir=ckpt)
    assert any(r.getMessage().startswith("resumed from") for r in caplog.records)
    assert strip(c3) == strip(c1) and m3["dev"] == m1["dev"] and m3["test"] == m1["test"]


def test_settings_defaults_and_fallbacks():
    # types and ranges are checked by the config schema; settings() resolves only the fallbacks
    s = ft.settings({"finetune": {"tasks": ["mrpc"], "epochs": 3, "batch_size": 8}, "train": {"threads": 2}})
    root = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())[
        "finetune"
    ]  # the one place defaults live
    assert s["pooling"] == root["pooling"] == "mean" and s["lr"] == root["lr"]
    assert s["eval_batch_size"] == 16 and s["threads"] == 2
    assert s["precision"] == "auto" and s["device"] == "auto"
    s = ft.settings(
        {"finetune": {"threads": 3, "eval_batch_size": 5}, "train": {"threads": 2, "device": "cpu"}}
    )
    assert (s["threads"], s["eval_batch_size"], s["device"]) == (3, 5, "cpu")


# --- resumable state: per-epoch checkpoints a rerun resumes from -----------------------------


@pytest.fixture(scope="module")
def other_twin(tmp_path_factory, tiny_tokenizer) -> Path:
    return _save_tiny_twin(tmp_path_factory.mktemp("twin2"), tiny_tokenizer, init_seed=5)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.parametrize("change", ["lr", "backbone"])
def test_stale_state_is_not_resumed(
    tmp_path, tiny_twin, other_twin, tiny_tokenizer, tiny_data, caplog, change
):
    """Item 11: a checkpoint of another lr or backbone was resumed while metrics named the new one."""
    cfg = {**TINY_CONFIG, "finetune": {**TINY_CONFIG["finetune"], "epochs": 2}}
    ckpt = tmp_path / "ckpt"
    ft.finetune("mrpc", tiny_twin, tiny_tokenizer, cfg, seed=1, ckpt_dir=ckpt, stop_after_epoch=1)
    twin = other_twin if change == "backbone" else tiny_twin
    if change == "lr":
        cfg = {**cfg, "finetune": {**cfg["finetune"], "lr": 3e-4}}
    with caplog.at_level("INFO"):
        m, curve = ft.finetune("mrpc", twin, tiny_tokenizer, cfg, seed=1, ckpt_dir=ckpt)
    assert any("belongs to another config" in r.getMessage() for r in caplog.records)
    fresh_m, fresh = ft.finetune("mrpc", twin, tiny_tokenizer, cfg, seed=1)
    assert _strip(curve) == _strip(fresh) and m["dev"] == fresh_m["dev"]


def test_damaged_state_restarts_from_scratch(tmp_path, tiny_twin, tiny_tokenizer, tiny_data, caplog):
    """Item 12 on the fine-tuning state: a truncated file is discarded (logged), never unpickled."""
    ckpt = tmp_path / "ckpt"
    ft.finetune("mrpc", tiny_twin, tiny_tokenizer, TINY_CONFIG, seed=1, ckpt_dir=ckpt, stop_after_epoch=1)
    state = ckpt / "finetune_state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    with caplog.at_level("INFO"):
        _, curve = ft.finetune("mrpc", tiny_twin, tiny_tokenizer, TINY_CONFIG, seed=1, ckpt_dir=ckpt)
    assert any(str(state) in r.getMessage() and "from scratch" in r.getMessage() for r in caplog.records)
    _, fresh = ft.finetune("mrpc", tiny_twin, tiny_tokenizer, TINY_CONFIG, seed=1)
    assert _strip(curve) == _strip(fresh)


def test_second_finetune_on_one_checkpoint_dir_refuses(tmp_path, tiny_twin, tiny_tokenizer, tiny_data, capfd):
    """Item 17: the CLI holds a lock on --ckpt DIR; a second trainer says so in one line, exit 2."""
    import fcntl

    from ternarylm.cli import main

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(TINY_CONFIG))
    args = ["finetune", "--config", str(cfg_path), "--task", "mrpc", "--model", str(tiny_twin)]
    args += ["--tokenizer", str(tiny_tokenizer), "--out", str(tmp_path / "ft"), "--ckpt", str(ckpt)]
    with open(ckpt / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rc = main(args)
    assert rc == 2 and not (tmp_path / "ft").exists()
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Traceback" not in err
    assert errors[0].endswith(
        f"{ckpt} is in use by another trainer (pid ?); stop it or wait for it to finish"
    )
    assert main(args) == 0 and (tmp_path / "ft" / "metrics.json").exists()
    assert not (ckpt / "finetune_state.pt").exists()  # removed after the outputs were written


def test_bucket_lengths():
    assert [clf.bucket_length(n, 128) for n in (1, 32, 33, 64, 65, 128)] == [32, 32, 64, 64, 128, 128]
    assert clf.bucket_length(40, 48) == 48 and clf.bucket_length(60, 48) == 60  # never cuts a sequence
    idx, lengths = clf.pad_batch([[5, 6, 7]], pad=0, bucket_max=128, rows=4)
    assert idx.shape == (4, 32) and lengths.tolist() == [3, 1, 1, 1] and idx[0, 3:].eq(0).all()
    assert clf.pad_batch([[5, 6, 7]], pad=0)[0].shape == (1, 3)  # eager: exact lengths


def test_compiled_finetuning_stops_compiling_after_the_first_epoch(
    tmp_path, tiny_twin, tiny_tokenizer, tiny_data, monkeypatch
):
    """Item 4: with fixed bucket lengths the compiled model sees no new shape after epoch 1.

    Every graph Dynamo compiles (first compile or recompile) passes through the backend, so a
    counting backend that runs the graph eagerly counts them without needing a C++ compiler."""
    graphs = {"n": 0}

    def counting_backend(gm, example_inputs):
        graphs["n"] += 1
        return gm.forward

    from ternarylm import fit as fit_mod

    real_compile, real_epoch = torch.compile, fit_mod._train_epoch
    at_epoch_start = []

    def epoch(model, fit, job, progress):
        at_epoch_start.append(graphs["n"])
        return real_epoch(model, fit, job, progress)

    monkeypatch.setattr(
        torch, "compile", lambda model, **kw: real_compile(model, backend=counting_backend, **kw)
    )
    monkeypatch.setattr(fit_mod, "_train_epoch", epoch)
    torch._dynamo.reset()
    cfg = {**TINY_CONFIG, "finetune": {**TINY_CONFIG["finetune"], "epochs": 3, "compile": True}}
    m, curve = ft.finetune("mrpc", tiny_twin, tiny_tokenizer, cfg, seed=1)
    torch._dynamo.reset()
    assert at_epoch_start[0] == 0 and at_epoch_start[1] > 0  # epoch 1 (train + eval) compiled
    assert at_epoch_start[1] == at_epoch_start[2] == graphs["n"]  # and nothing after it
    assert graphs["n"] <= 4  # (train, eval) x buckets (32, 48): every batch has a fixed shape
    assert len(curve) == 3 and m["dev"]["n"] == 40


def test_scratch_backbone_fine_tunes_the_ternary_init_without_a_model_dir(
    tmp_path, tiny_tokenizer, tiny_data, monkeypatch
):
    """The random-init control: built from the config's model section and the tokenizer's vocab,
    the ternary twin's step-0 weights for the seed; no pretrained model is ever read."""
    from ternarylm import model as model_mod
    from ternarylm.cli import main
    from ternarylm.tokenizer import load_tokenizer

    def no_model_dir(*args, **kwargs):
        raise AssertionError("the scratch control read a model folder")

    monkeypatch.setattr(model_mod, "load_model", no_model_dir)
    started = {}
    real_classifier = ft.SequenceClassifier

    def capture(backbone, *args, **kwargs):  # the backbone as fine-tuning receives it
        started.update({k: v.clone() for k, v in backbone.state_dict().items()})
        return real_classifier(backbone, *args, **kwargs)

    monkeypatch.setattr(ft, "SequenceClassifier", capture)
    tiny = dict(d_model=32, n_layers=1, n_heads=2, ffn_hidden=64, seq_len=48, dropout=0.0)
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps({**TINY_CONFIG, "model": tiny}))
    out = tmp_path / "ft"
    argv = ["finetune", "--config", str(cfg_path), "--task", "mrpc", "--backbone", "scratch"]
    assert main([*argv, "--tokenizer", str(tiny_tokenizer), "--out", str(out), "--seed", "4"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["variant"], m["backbone"], m["backbone_linear"], m["seed"]) == (
        "scratch",
        "scratch",
        "ternary",
        4,
    )
    assert m["n_bitlinear"] == 7 and (out / "curve.csv").exists()
    vocab = load_tokenizer(tiny_tokenizer).get_vocab_size()
    twin = model_mod.build_model(model_mod.variant_config(tiny, "ternary", vocab), seed=4)
    assert started.keys() == twin.state_dict().keys()
    assert all(torch.equal(started[k], v) for k, v in twin.state_dict().items())
    assert main([*argv, "--tokenizer", str(tiny_tokenizer), "--out", str(tmp_path / "x")]) == 2  # no seed
