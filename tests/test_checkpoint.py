"""Checkpoints a resume can trust, on the pretraining path."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys

import pytest
import torch
from test_train import MODEL, TRAIN, _run, _weights, tokens  # noqa: F401  (tokens: a fixture)

import ternarylm.train as train_mod
from ternarylm.io import UserError


@pytest.fixture(scope="module")
def reference(tokens, tmp_path_factory):  # noqa: F811
    """An uninterrupted run: every resume below must end with exactly its weights."""
    out = tmp_path_factory.mktemp("ref")
    _run(tokens, out / "m", out / "ck")
    return _weights(out / "m")


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _interrupt(tokens, tmp_path, step=13, **tcfg):  # noqa: F811
    with pytest.raises(SystemExit):
        _run(tokens, tmp_path / "m", tmp_path / "ck", stop_after=step, tcfg=tcfg)
    return tmp_path / "ck" / "ckpt.pt"


def _resumed(caplog) -> bool:
    return any(r.getMessage().startswith("resumed from") for r in caplog.records)


def test_resume_when_load_would_map_rng_state_off_the_cpu(tokens, tmp_path, monkeypatch, reference, caplog):  # noqa: F811
    """Item 1. On CUDA, torch.load(map_location=device) put the CPU RNG state on the GPU and
    torch.set_rng_state raised TypeError. Stand-in here: any map_location other than "cpu" is the
    run's device, and what lands there is no CPU ByteTensor (a cast, as a GPU tensor would be)."""
    _interrupt(tokens, tmp_path)
    real_load = torch.load

    def load_as_on_a_gpu(f, map_location=None, **kw):
        state = real_load(f, map_location="cpu", **kw)
        if map_location != "cpu":
            state = {k: v.to(torch.int16) if isinstance(v, torch.Tensor) and v.dtype == torch.uint8 else v
                     for k, v in state.items()}  # fmt: skip
        return state

    monkeypatch.setattr(torch, "load", load_as_on_a_gpu)
    with caplog.at_level(logging.INFO):
        _run(tokens, tmp_path / "m", tmp_path / "ck")
    assert _resumed(caplog) and _same(_weights(tmp_path / "m"), reference)


def test_restore_rng_accepts_a_state_that_left_the_cpu_byte_type():
    from ternarylm.checkpoint import restore_rng, rng_state

    saved = rng_state(torch.device("cpu"))
    expected = torch.rand(3)
    restore_rng({"cpu": saved["cpu"].to(torch.int64)}, torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_damaged_checkpoint_restarts_from_scratch(tokens, tmp_path, caplog, reference, damage):  # noqa: F811
    """Item 12: a corrupted checkpoint resumed silently (flip) or raised a torch traceback on
    every rerun (truncate, empty). Now: one log line naming it, then a fresh run."""
    path = _interrupt(tokens, tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        mid = len(data) // 2
        data[mid : mid + 8192] = bytes(8192)
    path.write_bytes(b"" if damage == "empty" else data[: len(data) // 2] if damage == "truncate" else data)
    with caplog.at_level(logging.INFO):
        _run(tokens, tmp_path / "m", tmp_path / "ck")
    assert any(
        str(path) in r.getMessage() and "starting from scratch" in r.getMessage() for r in caplog.records
    )
    assert not any("resumed from" in r.getMessage() for r in caplog.records)
    assert _same(_weights(tmp_path / "m"), reference)


def test_fingerprint_includes_cpu_threads(tokens, tmp_path, caplog):  # noqa: F811
    """Item 12: 1 and 2 CPU threads train different models, so they must not share a checkpoint."""
    _interrupt(tokens, tmp_path, threads=1)
    with caplog.at_level(logging.INFO):
        _run(tokens, tmp_path / "m", tmp_path / "ck", tcfg={"threads": 2})
    assert any("belongs to another config" in r.getMessage() for r in caplog.records)
    torch.set_num_threads(1)  # conftest's setting for the rest of the session


def test_no_nonfinite_checkpoint_is_ever_saved(tokens, tmp_path):  # noqa: F811
    """Item 13: with checkpoints more frequent than loss checks, NaN states were saved as 'good'."""
    with pytest.raises(UserError, match="non-finite checkpoint at step") as err:
        _run(tokens, tmp_path / "m", tmp_path / "ck", tcfg={"lr": 1e6, "ckpt_every": 3, "log_every": 10})
    state = torch.load(tmp_path / "ck" / "ckpt.pt", map_location="cpu", weights_only=False)
    assert f"at step {state['step'] + 3}:" in str(err.value)  # the last good one is kept
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert torch.isfinite(state["loss_sum"])
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_wall_clock_checkpoint_between_step_checkpoints(tokens, tmp_path, monkeypatch, reference, caplog):  # noqa: F811
    """Item 5: a checkpoint every ckpt_minutes even when ckpt_every steps never comes; the run
    killed without a signal handler (here an exception at step 12) resumes bitwise from it."""
    real_step, calls = train_mod.train_step, {"n": 0}

    def dies_at_12(*a, **k):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt
        return real_step(*a, **k)

    monkeypatch.setattr(train_mod, "train_step", dies_at_12)
    with pytest.raises(KeyboardInterrupt):
        _run(tokens, tmp_path / "m", tmp_path / "ck", tcfg={"ckpt_every": 10**6, "ckpt_minutes": 1e-9})
    assert torch.load(tmp_path / "ck" / "ckpt.pt", weights_only=False)["step"] == 11
    monkeypatch.setattr(train_mod, "train_step", real_step)
    with caplog.at_level(logging.INFO):
        _run(tokens, tmp_path / "m", tmp_path / "ck", tcfg={"ckpt_every": 10**6, "ckpt_minutes": 1e-9})
    assert _resumed(caplog) and _same(_weights(tmp_path / "m"), reference)


def test_sigusr1_checkpoints_and_stops(tokens, tmp_path, monkeypatch):  # noqa: F811
    """Item 5: SLURM's --signal=USR1 warning before the time limit saves a checkpoint and exits."""
    real_step, calls = train_mod.train_step, {"n": 0}

    def signalled_at_5(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGUSR1)
        return real_step(*a, **k)

    monkeypatch.setattr(train_mod, "train_step", signalled_at_5)
    with pytest.raises(SystemExit) as stop:
        _run(tokens, tmp_path / "m", tmp_path / "ck")
    assert stop.value.code == 128 + signal.SIGUSR1
    assert torch.load(tmp_path / "ck" / "ckpt.pt", weights_only=False)["step"] == 5


def _hold_lock(ckpt_dir):
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    f = open(ckpt_dir / ".lock", "a+")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f


def test_second_trainer_on_one_checkpoint_dir_refuses(tokens, tmp_path):  # noqa: F811
    """Item 17: an orphaned trainer plus a rerun would both write one checkpoint."""
    held = _hold_lock(tmp_path / "ck")
    try:
        with pytest.raises(UserError, match="in use by another trainer"):
            _run(tokens, tmp_path / "m", tmp_path / "ck")
        cfg = tmp_path / "cfg.json"
        cfg.write_text(json.dumps({"model": MODEL, "train": TRAIN}))
        r = subprocess.run(
            [sys.executable, "-m", "ternarylm", "pretrain", "--config", str(cfg), "--corpus", "synthetic",
             "--variant", "ternary", "--seed", "0", "--train", str(tokens / "train.bin"),
             "--val", str(tokens / "val.bin"), "--out-dir", str(tmp_path / "m"),
             "--ckpt-dir", str(tmp_path / "ck")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        held.close()
    assert r.returncode == 2, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "in use by another trainer" in errors[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "m").exists()
