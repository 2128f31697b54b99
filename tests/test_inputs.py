"""Hostile inputs: bad configs, broken artifacts,
bad CLI arguments, interrupted or failing writes, missing optional dependencies.
Each is one clear line naming the key or file and exit status 2 -- never a traceback or exit 0."""

import errno
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, one_error_line

from ternarylm.cli import main
from ternarylm.encode import load_tokens
from ternarylm.io import UserError, atomic_path, load_config, write_json
from ternarylm.model import ModelConfig, build_model, load_model, save_model
from ternarylm.synthetic import synthetic_corpus
from ternarylm.tokenizer import train_tokenizer

VOCAB = 64
TINY = dict(vocab_size=VOCAB, d_model=16, n_layers=1, n_heads=2, ffn_hidden=32, seq_len=8, dropout=0.0)
EVAL_CFG = {
    "train": {"label_smoothing": 0.1, "batch_size": 4, "device": "cpu", "precision": "fp32"},
    "evaluate": {"train_batches": 2, "val_batches": 2},
}


@pytest.fixture(autouse=True)
def _forget_cli_logging():
    """main() points the root logger at this test's captured stderr, which pytest closes after it."""
    yield
    logging.root.handlers.clear()


def _tokens(path: Path, ids: np.ndarray, vocab: int = VOCAB) -> Path:
    ids.astype(np.uint16).tofile(path)
    path.with_suffix(".json").write_text(json.dumps({"n_tokens": int(len(ids)), "vocab_size": vocab}))
    return path


@pytest.fixture
def run_dir(tmp_path):
    """A tiny saved twin, train/val token files and an evaluate config."""
    save_model(build_model(ModelConfig(**TINY), seed=0), tmp_path / "m", {"variant": "ternary"})
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        _tokens(tmp_path / f"{split}.bin", rng.integers(0, VOCAB, 200))
    (tmp_path / "cfg.json").write_text(json.dumps(EVAL_CFG))
    return tmp_path


def _evaluate(d: Path, cfg: Path | None = None, out: str = "eval.json") -> int:
    argv = ["evaluate", "--config", str(cfg or d / "cfg.json"), "--model", str(d / "m")]
    return main([*argv, "--train", str(d / "train.bin"), "--val", str(d / "val.bin"), "--out", str(d / out)])


# --- the CLI validates the config like the Snakefile -----------------------------------------------
@pytest.mark.parametrize(
    "section, change, key",
    [
        ("model", {"d_model": 16, "n_heads": 3}, "n_heads"),  # 3 does not divide 16
        ("model", {"d_model": 12, "n_heads": 4}, "head size"),  # 3 channels: RoPE needs pairs
        ("train", {"lr": float("nan")}, "train.lr"),
        ("train", {"lr": float("inf")}, "train.lr"),
        ("train", {"batch_size": 0}, "train.batch_size"),
        ("train", {"eval_every": 0}, "train.eval_every"),
        ("train", {"max_tokens": 1000}, "max_tokens"),  # the dead knob is gone
        ("train", {"device": "tpu"}, "'cpu'"),  # allowed values named
        ("tokenizer", {"vocab_size": 16}, "tokenizer.vocab_size"),
        (None, {"results_dir": ""}, "results_dir"),
    ],
)
def test_cli_rejects_bad_config_before_running(run_dir, capfd, section, change, key):
    cfg = json.loads(json.dumps(EVAL_CFG))
    if section:
        cfg.setdefault(section, {}).update(change)
    else:
        cfg.update(change)
    path = run_dir / "bad.yaml"
    # YAML so .nan/.inf are what a user writes; json.dumps would write NaN
    path.write_text(json.dumps(cfg, allow_nan=True).replace("NaN", ".nan").replace("Infinity", ".inf"))
    assert _evaluate(run_dir, path) == 2
    line = one_error_line(capfd)
    assert key in line and str(path) in line
    assert not (run_dir / "eval.json").exists()


def test_results_dir_under_a_file_is_rejected(run_dir, capfd):
    (run_dir / "afile").write_text("x")
    cfg = {**EVAL_CFG, "results_dir": str(run_dir / "afile" / "results")}
    (run_dir / "bad.json").write_text(json.dumps(cfg))
    assert _evaluate(run_dir, run_dir / "bad.json") == 2
    assert "results_dir" in one_error_line(capfd)


def test_presets_pass_and_package_schema_is_the_workflow_schema():
    from ternarylm.config import SCHEMA_PATH, merge, validate_config

    assert SCHEMA_PATH.resolve().samefile(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    for preset in (None, "smoke.yaml", "realdata-mini.yaml"):
        override = load_config(ROOT / "workflow" / "presets" / preset) if preset else {}
        validate_config(merge(load_config(ROOT / "config.yaml"), override), str(preset))


def test_check_config_names_the_broken_preset(tmp_path, capfd):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1,\n")
    root = str(ROOT / "config.yaml")
    assert main(["check-config", "--config", root, "--configfile", str(bad)]) == 2
    assert f"{bad}:3:1" in one_error_line(capfd)
    heads = tmp_path / "heads.yaml"
    heads.write_text("model: {n_heads: 5}\n")
    assert main(["check-config", "--config", root, "--configfile", str(heads)]) == 2
    assert "model.n_heads (5) must divide model.d_model (768)" in one_error_line(capfd)
    smoke = str(ROOT / "workflow" / "presets" / "smoke.yaml")
    assert main(["check-config", "--config", root, "--configfile", smoke]) == 0


def test_yaml_syntax_error_is_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1,\n  batch_size: 4\n")
    with pytest.raises(UserError) as e:
        load_config(bad)
    assert str(e.value).startswith(str(bad)) and "\n" not in str(e.value)


# --- broken artifacts -------------------------------------------------------------------------
def _flip_first_weight(weights: Path) -> None:
    raw = bytearray(weights.read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")  # safetensors: u64 header size, header, data
    raw[start + 2 : start + 4] = b"\xff\x7f"  # exponent bits all set: inf/NaN
    weights.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["truncated", "empty", "bitflip"])
def test_broken_weights_are_one_line_naming_the_file(run_dir, capfd, damage):
    weights = run_dir / "m" / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "empty":
        weights.write_bytes(b"")
    else:
        _flip_first_weight(weights)
    assert _evaluate(run_dir) == 2
    assert str(weights) in one_error_line(capfd)
    assert not (run_dir / "eval.json").exists()


def test_evaluate_never_publishes_nan_metrics(run_dir, capfd, monkeypatch):
    import ternarylm.evaluate as ev

    monkeypatch.setattr(ev, "evaluate_loss", lambda *a, **k: (float("nan"), float("nan")))
    assert _evaluate(run_dir) == 2
    assert "non-finite" in one_error_line(capfd)
    assert not (run_dir / "eval.json").exists()


def test_write_json_refuses_non_finite(tmp_path):
    with pytest.raises(UserError, match=r"val_ppl"):
        write_json(tmp_path / "x.json", {"val_ppl": float("nan"), "ok": 1.0})
    assert not (tmp_path / "x.json").exists()


def test_token_files_are_checked_once_at_load(tmp_path):
    odd = tmp_path / "odd.bin"
    _tokens(odd, np.arange(10))
    odd.write_bytes(odd.read_bytes() + b"\x00")
    with pytest.raises(UserError, match=r"odd\.bin.*uint16"):
        load_tokens(odd)
    big = _tokens(tmp_path / "big.bin", np.array([1, 2, VOCAB + 5, 3]))
    with pytest.raises(UserError, match=r"big\.bin.*token id 69"):
        load_tokens(big)
    ok = _tokens(tmp_path / "ok.bin", np.arange(10))
    with pytest.raises(UserError, match=r"ok\.bin.*do not match"):
        load_tokens(ok, vocab_size=VOCAB // 2)
    assert len(load_tokens(ok, vocab_size=VOCAB * 2)) == 10  # a padded model vocab is fine
    (tmp_path / "dir.bin").mkdir()
    with pytest.raises(UserError, match=r"dir\.bin"):
        load_tokens(tmp_path / "dir.bin")


def test_evaluate_rejects_tokens_of_another_vocab(run_dir, capfd):
    _tokens(run_dir / "val.bin", np.arange(100) % 80, vocab=80)  # ids past the model's 64
    assert _evaluate(run_dir) == 2
    assert "val.bin" in one_error_line(capfd)


def test_directory_as_data_file(tmp_path):
    from ternarylm.data import read_docs

    with pytest.raises(UserError, match=str(tmp_path)):
        read_docs(tmp_path)
    with pytest.raises(UserError, match="not a model folder"):
        load_model(tmp_path / "nothing")


# --- CLI arguments ----------------------------------------------------------------------------
@pytest.fixture
def gen_setup(tmp_path):
    tok = train_tokenizer(synthetic_corpus(50, 0), VOCAB)
    (tmp_path / "tok.json").write_text(tok.to_str())
    save_model(build_model(ModelConfig(**TINY), seed=0), tmp_path / "m", {"variant": "ternary"})
    (tmp_path / "c.yaml").write_text("{}\n")
    return tmp_path


def _gen_argv(d: Path, *extra: str) -> list[str]:
    return [
        "generate",
        "--config",
        str(d / "c.yaml"),
        "--model",
        str(d / "m"),
        "--tokenizer",
        str(d / "tok.json"),
        *extra,
    ]


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--max-new-tokens", "0"),
        ("--max-new-tokens", "-3"),
        ("--num-samples", "0"),
        ("--temperature", "-1"),
        ("--top-k", "-2"),
    ],
)
def test_generate_rejects_bad_numbers(gen_setup, capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        main(_gen_argv(gen_setup, flag, value))
    assert e.value.code == 2 and flag in capsys.readouterr().err


def test_generate_warns_past_seq_len_and_honours_max_new_tokens(gen_setup, capfd):
    out = gen_setup / "g.json"
    assert main(_gen_argv(gen_setup, "--max-new-tokens", "12", "--out", str(out))) == 0
    assert "longer than the 8" in capfd.readouterr().err  # the CLI's logging replaces caplog's handler
    assert 1 <= len(json.loads(out.read_text())["samples"][0]["ids"]) <= 12


def test_generate_rejects_tokenizer_larger_than_model(gen_setup, capfd):
    save_model(build_model(ModelConfig(**{**TINY, "vocab_size": 32}), seed=0), gen_setup / "m", {})
    assert main(_gen_argv(gen_setup)) == 2
    assert "tok.json" in one_error_line(capfd)


def test_broken_packed_model_is_one_line(gen_setup, capfd):
    packed = gen_setup / "p.safetensors"
    packed.write_bytes(b"\x00" * 64)
    argv = _gen_argv(gen_setup)
    argv[argv.index("--model") + 1] = str(packed)
    assert main(argv) == 2
    assert str(packed) in one_error_line(capfd)


def test_unwritable_output_is_one_line(gen_setup, capfd):
    (gen_setup / "afile").write_text("x")
    assert main(_gen_argv(gen_setup, "--out", str(gen_setup / "afile" / "g.json"))) == 2
    assert "cannot write" in one_error_line(capfd)


def _gguf_export_argv(setup: Path, model: str, out: str) -> list[str]:
    """`ternarylm export --format gguf` of ``setup/model`` to ``setup/out``."""
    return [
        "export",
        "--config",
        str(setup / "c.yaml"),
        "--format",
        "gguf",
        "--model",
        str(setup / model),
    ] + [
        "--tokenizer",
        str(setup / "tok.json"),
        "--out",
        str(setup / out),
    ]


def test_export_fp32_twin_refuses_ternary_type(gen_setup, capfd):
    pytest.importorskip("gguf")
    save_model(build_model(ModelConfig(**{**TINY, "linear": "fp32"}), seed=0), gen_setup / "f", {})
    argv = _gguf_export_argv(gen_setup, "f", "f.gguf")
    assert main([*argv, "--ternary-type", "tq2_0"]) == 2
    assert "fp32 twin" in one_error_line(capfd)
    assert not (gen_setup / "f.gguf").exists()


# --- temporaries and full disks ---------------------------------------------------------------
def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    import socket

    host = socket.gethostname().replace(".", "_")
    dead = tmp_path / f".x.json.{2**22 + 12345}@{host}.abc123.tmp"  # above pid_max: never alive
    live = tmp_path / f".x.json.{os.getpid()}@{host}.def456.tmp"
    legacy = tmp_path / ".x.json.k3j4h5.tmp"  # before writers were named: stale after a day
    other = tmp_path / ".y.json.1@h.aaa.tmp"  # another target: not ours to touch
    for p in (dead, live, legacy, other):
        p.write_text("partial")
    os.utime(legacy, (0, 0))
    write_json(tmp_path / "x.json", {"a": 1})
    assert not dead.exists() and not legacy.exists()
    assert live.exists() and other.exists()


def test_permission_denied_names_the_file(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(UserError, match=rf"cannot write {target}: Permission denied"):
        with atomic_path(target):
            raise PermissionError(errno.EACCES, "Permission denied")


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4160 vs 4054"),
        RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed"),
    ],
)
def test_full_disk_names_the_file(tmp_path, error):
    target = tmp_path / "ckpt.pt"
    with pytest.raises(UserError, match=rf"no space left on device.*{target}") as e:
        with atomic_path(target):
            raise error
    assert "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())  # no temporary left behind


def test_torch_save_on_full_disk(tmp_path, monkeypatch):
    """torch.save itself failing mid-write (its writer reports ENOSPC as 'unexpected pos')."""
    target = tmp_path / "ckpt.pt"

    def full_disk(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:783] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch.serialization, "_save", full_disk)
    with pytest.raises(UserError, match="no space left on device"):
        with atomic_path(target) as tmp:
            torch.save({"x": torch.zeros(3)}, tmp)


# --- missing optional dependencies -------------------------------------------------------------------
def test_missing_optional_dependency_names_the_extra(gen_setup, capfd, monkeypatch):
    from ternarylm.io import require

    with pytest.raises(
        UserError, match=r"^nonexistent_mod is not installed: pip install 'ternarylm\[deploy\]'$"
    ):
        require("nonexistent_mod", "deploy")
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf -> ModuleNotFoundError
    argv = _gguf_export_argv(gen_setup, "m", "t.gguf")
    assert main(argv) == 2
    assert "gguf is not installed: a core dependency: reinstall ternarylm" in one_error_line(capfd)


def test_run_config_written_by_the_snakefile_skips_only_the_schema(tmp_path, monkeypatch):
    """Jobs read results/config/<hash>.json, validated at parse time: the CLI skips the slow schema
    check for it (not the cross-field checks), and validates it again once edited."""
    import hashlib
    import json

    from ternarylm import config as tc

    calls = []
    monkeypatch.setattr(tc, "validate_schema", lambda *a, **k: calls.append(a[1]))
    text = json.dumps({"model": {"d_model": 64, "n_heads": 4}}, indent=2, sort_keys=True) + "\n"
    path = tmp_path / "config" / (hashlib.sha256(text.encode()).hexdigest()[:12] + ".json")
    path.parent.mkdir()
    path.write_text(text)
    tc.validate_config(json.loads(text), str(path), partial=True)
    assert calls == []
    bad = {"model": {"d_model": 64, "n_heads": 5}}  # cross-field checks still run
    with pytest.raises(UserError, match="n_heads"):
        tc.validate_config(bad, str(path), partial=True)
    path.write_text(text.replace("64", "32"))  # edited by hand: no longer its hash
    tc.validate_config(json.loads(path.read_text()), str(path), partial=True)
    assert calls == [str(path)]
