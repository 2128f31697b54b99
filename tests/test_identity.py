"""Artifacts that know what they belong to (issue 22): content in every checkpoint fingerprint, a
model bound to its tokenizer and weights, whole-or-absent exports, one mapping for a full disk."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import pytest
import torch
from test_finetune import TINY_CONFIG, _strip, tiny_data, tiny_tokenizer, tiny_twin  # noqa: F401
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
    tmp_path, tiny_twin, tiny_tokenizer, tiny_data, caplog, monkeypatch  # noqa: F811
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
