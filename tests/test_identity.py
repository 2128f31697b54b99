"""Artifacts that know what they belong to (issue 22): content in every checkpoint fingerprint, a
model bound to its tokenizer and weights, whole-or-absent exports, one mapping for a full disk."""

from __future__ import annotations

# ruff: noqa: F811  (pytest fixtures imported from the other test modules)
import dataclasses
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from test_finetune import TINY_CONFIG, _strip, tiny_data, tiny_tokenizer, tiny_twin  # noqa: F401  (fixtures)
from test_train import _run, _weights, tokens  # noqa: F401  (fixtures)

from ternarylm import finetune as ft
from ternarylm.io import UserError


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


# --- content in every fingerprint ----------------------------------------------------------------
def test_pretrain_resume_after_equal_size_data_change_starts_afresh(tokens, tmp_path, caplog):  # noqa: F811
    data = tmp_path / "data"
    shutil.copytree(tokens, data)
    with pytest.raises(SystemExit):
        _run(data, tmp_path / "m", tmp_path / "ck", stop_after=13)
    # the same number of tokens, other content (the stream reversed): only the sha256 differs
    arr = np.fromfile(data / "train.bin", dtype=np.uint16)
    arr[::-1].copy().tofile(data / "train.bin")
    with caplog.at_level("INFO"):
        _run(data, tmp_path / "m", tmp_path / "ck")
    msgs = _messages(caplog)
    assert any("made on other data (content of the token files changed)" in m for m in msgs), msgs
    assert not any(m.startswith("resumed from") for m in msgs)
    _run(data, tmp_path / "fresh", tmp_path / "ck2")  # uninterrupted on the new data
    assert _same(_weights(tmp_path / "m"), _weights(tmp_path / "fresh"))


def test_finetune_resume_after_labels_flipped_starts_afresh(
    tmp_path,
    tiny_twin,
    tiny_tokenizer,
    tiny_data,
    caplog,
    monkeypatch,  # noqa: F811
):
    cfg = {**TINY_CONFIG, "finetune": {**TINY_CONFIG["finetune"], "epochs": 2}}
    ckpt = tmp_path / "ckpt"
    ft.finetune("mrpc", tiny_twin, tiny_tokenizer, cfg, seed=1, ckpt_dir=ckpt, stop_after_epoch=1)
    load = ft.load_split

    def flipped(task, split, config):  # a third of the training labels flipped, sizes unchanged
        rows = load(task, split, config)
        if split != "train":
            return rows
        return [dataclasses.replace(e, label=1 - e.label) if i % 3 == 0 else e for i, e in enumerate(rows)]

    monkeypatch.setattr(ft, "load_split", flipped)
    with caplog.at_level("INFO"):
        m, curve = ft.finetune("mrpc", tiny_twin, tiny_tokenizer, cfg, seed=1, ckpt_dir=ckpt)
    msgs = _messages(caplog)
    assert any("made on other data (content of the task files changed)" in m for m in msgs), msgs
    fresh_m, fresh = ft.finetune("mrpc", tiny_twin, tiny_tokenizer, cfg, seed=1)
    assert _strip(curve) == _strip(fresh) and m["dev"] == fresh_m["dev"]


# --- a full disk, on every writer ------------------------------------------------------------------
@pytest.fixture()
def full_disk(tmp_path):
    """A 64 KiB tmpfs: every write of more than that fails with ENOSPC."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip() or proc.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "--lazy", str(mnt)], check=False)  # lazy: a writer may still hold it


def _big_model():
    from ternarylm.model import build_model

    cfg = dict(vocab_size=300, d_model=256, n_layers=1, n_heads=4, ffn_hidden=256, seq_len=32)
    return build_model({**cfg, "linear": "ternary"}, seed=0)


def test_every_writer_says_no_space_left_in_one_line(full_disk, tmp_path):
    from ternarylm.checkpoint import Checkpoint
    from ternarylm.export import export_gguf
    from ternarylm.io import write_csv, write_json
    from ternarylm.model import save_model

    model = _big_model()
    save_model(model, tmp_path / "src")
    writers = {
        "model.safetensors": lambda p: save_model(model, p.parent),
        "m.gguf": lambda p: export_gguf(tmp_path / "src", p, None, "tq2_0", "f32", "f32"),
        "big.json": lambda p: write_json(p, {"x": list(range(30_000))}),
        "big.csv": lambda p: write_csv(p, [{"i": i, "text": "x" * 20} for i in range(5000)]),
        "ckpt.pt": lambda p: Checkpoint(p.parent, p.name).save({"w": torch.zeros(40_000)}, True, "state"),
    }
    for name, write in writers.items():
        path = full_disk / name
        with pytest.raises(UserError) as e:
            write(path)
        assert str(e.value) == f"no space left on device: {path}", name
        assert not list(full_disk.glob(f".{name}*")), name  # no temporaries left behind


# --- a model knows its tokenizer and its weights -------------------------------------------------
def _tokenizer(path: Path, seed: int, vocab: int) -> Path:
    from ternarylm.synthetic import synthetic_corpus
    from ternarylm.tokenizer import train_tokenizer

    path.write_text(train_tokenizer(synthetic_corpus(120, seed), vocab).to_str(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bound(tmp_path_factory):
    """A ternary and an fp32 model saved with their tokenizer's record, and three foreign tokenizers."""
    from ternarylm.model import build_model, save_model
    from ternarylm.tokenizer import load_tokenizer

    root = tmp_path_factory.mktemp("bound")
    tok = _tokenizer(root / "tok.json", 0, 200)
    vocab = load_tokenizer(str(tok)).get_vocab_size()
    cfg = dict(vocab_size=vocab, d_model=32, n_layers=1, n_heads=2, ffn_hidden=64, seq_len=32)
    for seed, variant in enumerate(("ternary", "fp32")):  # twins differ once trained: other seeds here
        # the record pretraining writes (spelled out: the test must also run where it is not written)
        record = {"tokenizer_sha256": hashlib.sha256(tok.read_bytes()).hexdigest(), "vocab_size": vocab}
        extra = {"variant": variant, "seed": seed, "identity": record}
        save_model(build_model({**cfg, "linear": variant}, seed=seed), root / variant, extra)
    foreign = {
        "smaller": _tokenizer(root / "small.json", 0, 120),
        "larger": _tokenizer(root / "large.json", 0, 357),
        "same size": _tokenizer(root / "same.json", 1, 200),
    }
    assert load_tokenizer(str(foreign["same size"])).get_vocab_size() == vocab
    return root, tok, foreign


def _cli(capfd, *argv) -> tuple[int, str]:
    from ternarylm.cli import main

    capfd.readouterr()
    rc = main(list(map(str, argv)))
    return rc, capfd.readouterr().err.strip()


@pytest.mark.parametrize("which", ["smaller", "larger", "same size"])
def test_every_stage_refuses_a_foreign_tokenizer(bound, tmp_path, capfd, tiny_data, which):
    root, tok, foreign = bound
    model, bad = root / "ternary", foreign[which]
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(TINY_CONFIG))
    stages = {
        "generate": ["generate", "--model", model, "--tokenizer", bad, "--max-new-tokens", 2],
        "finetune": [
            "finetune",
            "--task",
            "mrpc",
            "--model",
            model,
            "--tokenizer",
            bad,
            "--out",
            tmp_path / "f",
        ],
        "export hf": [
            "export",
            "--format",
            "hf",
            "--model",
            model,
            "--tokenizer",
            bad,
            "--out",
            tmp_path / "hf",
        ],
        "export gguf": [
            "export",
            "--format",
            "gguf",
            "--model",
            model,
            "--tokenizer",
            bad,
            "--out",
            tmp_path / "g.gguf",
        ],
        "export packed": [
            "export",
            "--format",
            "packed",
            "--model",
            model,
            "--tokenizer",
            bad,
            "--out",
            tmp_path / "p.st",
        ],
        "bench": [
            "bench",
            "--models",
            model,
            "--tokenizer",
            bad,
            "--out",
            tmp_path / "b.csv",
            "--formats",
            "torch-fp32",
        ],
    }
    for stage, argv in stages.items():
        rc, err = _cli(capfd, argv[0], "--config", cfg, *argv[1:])
        assert rc == 2 and len(err.splitlines()) == 1, (stage, err)
        assert "tokenizer" in err and str(bad) in err, (stage, err)
    assert not [p.name for p in tmp_path.iterdir() if p.name != "c.json"]  # nothing written
    # the model's own tokenizer passes the same check
    from ternarylm.identity import check_model

    check_model(model, tok)


def test_evaluate_refuses_tokens_of_another_tokenizer(bound, tmp_path):
    from ternarylm.evaluate import evaluate_model

    root, _, _ = bound
    bin_path = tmp_path / "val.bin"
    np.arange(5, 105, dtype=np.uint16).tofile(bin_path)
    meta = {"n_tokens": 100, "vocab_size": 200, "tokenizer_sha256": "0" * 64}
    bin_path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="tokenized with another tokenizer"):
        evaluate_model(
            root / "ternary",
            bin_path,
            bin_path,
            {"train": {"device": "cpu", "label_smoothing": 0.1, "batch_size": 2}},
        )


def test_finite_corruption_and_the_other_twins_config_are_refused(bound, tmp_path):
    from safetensors.torch import load_file, save_file

    from ternarylm.model import load_model

    root, _, _ = bound
    bad = tmp_path / "finite"
    shutil.copytree(root / "ternary", bad)
    state = load_file(str(bad / "model.safetensors"))
    state["tok_emb.weight"][:8] += 0.5  # finite, plausible: only the hash can tell
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(UserError, match="sha256 differs from the one its config.json records"):
        load_model(bad)
    mixed = tmp_path / "mixed"  # the ternary twin's weights under the fp32 twin's config.json
    shutil.copytree(root / "ternary", mixed)
    shutil.copy(root / "fp32" / "config.json", mixed / "config.json")
    with pytest.raises(UserError, match="sha256 differs"):
        load_model(mixed)
    load_model(root / "ternary")  # the untouched folder loads


# --- exports that are whole or absent ------------------------------------------------------------
def test_hf_export_is_whole_or_absent(bound, tmp_path, capfd):
    root, tok, _ = bound
    model = root / "ternary"
    out = tmp_path / "hf"
    ev = tmp_path / "seed0.json"
    ev.write_text(
        json.dumps({"val_ppl": 9.0, "val_ppl_smoothed": 11.0, "label_smoothing": 0.1, "loss_ratio": 1.1})
    )
    ftj = tmp_path / "metrics.json"
    ftj.write_text(json.dumps({"task": "mrpc", "majority": {}, "dev": {}}))
    short = tmp_path / "short.bin"
    np.arange(5, 15, dtype=np.uint16).tofile(short)
    short.with_suffix(".json").write_text(json.dumps({"n_tokens": 10, "vocab_size": 200}))
    base = ["export", "--format", "hf", "--model", model, "--tokenizer", tok, "--out", out]
    cases = {
        "bad --val-tokens": (["--val-tokens", short], "less than one window"),
        "negative --val-windows": (["--val-windows", -3], "--val-windows must be 0"),
        "fine-tune JSON as --card-eval": (["--card-eval", ftj], "not an evaluate JSON"),
    }
    for case, (extra, msg) in cases.items():
        rc, err = _cli(capfd, *base, *extra)
        assert rc == 2 and len(err.splitlines()) == 1 and msg in err, (case, err)
        assert not out.exists() and not list(tmp_path.glob(".hf*")), case
    rc, err = _cli(capfd, *base, "--card-eval", ev)  # the retry is not blocked
    assert rc == 0, err
    assert {"model.safetensors", "export.json", "README.md"} <= {p.name for p in out.iterdir()}
    assert str(out) in (out / "README.md").read_text() and ".tmp" not in (out / "README.md").read_text()
    rc, err = _cli(capfd, *base)  # a second export replaces the first, whole
    assert rc == 0 and (out / "README.md").exists() and not list(tmp_path.glob(".hf*")), err
    afile = tmp_path / "afile"
    afile.write_text("user data")
    rc, err = _cli(capfd, *base[:-1], afile)
    assert rc == 2 and len(err.splitlines()) == 1 and "is a file" in err, err
    assert afile.read_text() == "user data"


# --- config parsing that cannot be fooled or hung --------------------------------------------------
# 9**7 strings once expanded, in a key the schema types: the old check-config built the whole
# expansion into its error message (~10 s, ~240 MB here; one level more is 9x that)
BOMB = "results_dir:\n  - &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  - &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdef", "bcdefg")
)


def test_duplicate_keys_are_refused_naming_key_and_both_lines(tmp_path, capfd):
    path = tmp_path / "dup.yaml"
    path.write_text("train:\n  lr: 0.01\n  epochs: 2\nseeds: [0]\ntrain:\n  epochs: 3\n")
    rc, err = _cli(capfd, "check-config", "--configfile", path)
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert f"{path}:5: duplicate key 'train' (also on line 1)" in err
    nested = tmp_path / "nested.yaml"
    nested.write_text("train:\n  lr: 0.01\n  lr: 0.003\n")
    with pytest.raises(UserError, match=r"nested.yaml:3: duplicate key 'lr' \(also on line 2\)"):
        from ternarylm.io import load_config

        load_config(nested)


def test_alias_bomb_fails_fast(tmp_path):
    import sys
    import time

    from ternarylm.io import load_config

    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    cmd = [sys.executable, "-m", "ternarylm", "check-config", "--configfile", str(path)]
    try:  # the CLI's validation walk used to visit every alias: 9**9 strings
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[1])
    except subprocess.TimeoutExpired:
        pytest.fail("check-config hung on an alias bomb (> 60 s)")
    assert proc.returncode == 2 and "alias bomb" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="expands to more than 100,000 values through its aliases"):
        load_config(path)
    assert time.perf_counter() - t0 < 1.0
    small = tmp_path / "anchors.yaml"  # an ordinary anchor still works
    small.write_text("base: &b {lr: 0.01}\ntrain: *b\n")
    assert load_config(small)["train"] == {"lr": 0.01}


@pytest.mark.parametrize("key", ["results_dir", "data_dir"])
def test_a_path_the_shell_would_split_is_refused_at_parse_time(tmp_path, key):
    from ternarylm.config import check_cross_fields

    with pytest.raises(UserError, match=rf"{key} '.*a b' holds ' '"):
        check_cross_fields({key: str(tmp_path / "a b")})
    check_cross_fields({key: str(tmp_path / "a_b")})


# --- one owner per results folder ----------------------------------------------------------------
def test_owner_lock_and_record(tmp_path, monkeypatch):
    from ternarylm import owner

    results = tmp_path / "shared-results"
    first = owner.record(tmp_path / "clone1", "aaaaaaaaaaaa")
    assert owner.check(results, first) is False  # a new folder has no owner
    owner.acquire(results, first)
    try:
        assert owner.running(results) and owner.read(results)["run_id"] == first["run_id"]
        other_config = owner.record(tmp_path / "clone1", "bbbbbbbbbbbb")
        with pytest.raises(UserError, match=r"in use by a running workflow: checkout .*clone1 \(config aaaa"):
            owner.check(results, other_config)
        assert owner.check(results, first) is False  # a dry run of the running config: allowed
        with pytest.raises(UserError, match="in use by a running workflow"):
            owner.acquire(results, first)  # never two runs at once, whatever their config
    finally:
        owner.release()
    assert not owner.running(results)
    assert owner.check(results, other_config) is False  # same checkout, new config: params reruns
    second = owner.record(tmp_path / "clone2", "aaaaaaaaaaaa")
    with pytest.raises(
        UserError, match=rf"belongs to checkout .*clone1 .*{owner.TAKE_OVER_ENV}=1 snakemake --forceall"
    ):
        owner.check(results, second, forceall=True)
    monkeypatch.setenv(owner.TAKE_OVER_ENV, "1")
    with pytest.raises(UserError, match="belongs to checkout"):
        owner.check(results, second)  # taking over without rebuilding every output is refused
    assert owner.check(results, second, forceall=True) is True
    assert (
        owner.forceall_in(["-n", "--forceall"])
        and owner.forceall_in(["-nF"])
        and not owner.forceall_in(["-n"])
    )
    monkeypatch.setenv(owner.TAKE_OVER_ENV, "yes")
    with pytest.raises(UserError, match=f"{owner.TAKE_OVER_ENV}='yes'"):
        owner.check(results, second)


def test_a_second_checkout_is_refused_by_snakemake(tmp_path):
    from helpers import copy_workflow, job_counts, snakemake

    results = tmp_path / "shared"  # owned by a finished run of another checkout (written by hand)
    results.mkdir()
    rec = {"checkout": str(tmp_path / "clone1"), "config_hash": "aaaaaaaaaaaa", "run_id": "r1", "pid": 1}
    (results / ".owner.json").write_text(json.dumps(rec))
    wd = copy_workflow(tmp_path / "clone2")
    args = ["-n", "--configfile", "workflow/presets/smoke.yaml", "--config", f"results_dir={results}"]
    proc = snakemake(wd, *args)
    assert proc.returncode != 0
    assert f"results folder {results} belongs to checkout {tmp_path / 'clone1'}" in proc.stderr + proc.stdout
    proc = snakemake(wd, *args, "--forceall", env={"TERNARYLM_TAKE_OVER_RESULTS": "1"}, check=True)
    assert job_counts(proc.stdout).get("prepare") == 1


def test_a_local_pretrained_tokenizer_is_a_rule_input(tmp_path):
    import time

    from helpers import copy_workflow, job_counts, snakemake

    wd = copy_workflow(tmp_path / "wd")
    vocab = _tokenizer(tmp_path / "vocab.json", 0, 150)
    over = tmp_path / "pretrained.yaml"
    over.write_text(f"tokenizer:\n  pretrained: {vocab}\n")
    target = "results/tokenizer/tokenizer.json"
    args = ["--configfile", "workflow/presets/smoke.yaml", str(over)]
    snakemake(wd, "--cores", "1", target, *args, check=True)
    assert job_counts(snakemake(wd, "-n", target, *args, check=True).stdout) == {}  # up to date
    time.sleep(1.1)  # a replaced file is newer than the vocabulary made from it
    _tokenizer(vocab, 1, 150)
    assert job_counts(snakemake(wd, "-n", target, *args, check=True).stdout).get("tokenizer") == 1
