"""Provenance: every artifact JSON says which commit, command, device and
threads made it; the git state is that of the package's checkout, "unknown" outside one.

The stages run as real ``python -m ternarylm`` processes so the recorded command is the real one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from ternarylm.model import build_model, save_model
from ternarylm.tokenizer import load_tokenizer

PRINT_GIT = "import json, ternarylm, ternarylm.provenance as p; print(json.dumps([ternarylm.__file__, p.git_state()]))"
GIT_ID = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]


def _python(code: str, pythonpath: Path, cwd: Path, path_env: str | None = None) -> tuple[str, list]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    if path_env is not None:
        env["PATH"] = path_env
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    file, state = json.loads(r.stdout)
    return file, state


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT_ID, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_commit_of_the_package_checkout_from_any_folder(tmp_path):
    head = _git(ROOT, "rev-parse", "HEAD").strip()
    file, (sha, dirty) = _python(PRINT_GIT, ROOT, cwd=tmp_path)  # started outside the repository
    assert Path(file).is_relative_to(ROOT)
    assert sha == head and re.fullmatch(r"[0-9a-f]{40}", sha) and isinstance(dirty, bool)


def test_unknown_outside_git_and_without_git(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "ternarylm", copy / "ternarylm", ignore=shutil.ignore_patterns("__pycache__"))
    # started inside the repository (docs/: not a package folder that would shadow the copy): the
    # commit must not be the working directory's
    file, state = _python(PRINT_GIT, copy, cwd=ROOT / "docs")
    assert Path(file).is_relative_to(copy) and state == ["unknown", None]
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    # no git binary on PATH: still no exception
    assert _python(PRINT_GIT, ROOT, cwd=ROOT, path_env=str(empty))[1] == ["unknown", None]


def test_dirty_flag_follows_tracked_files(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "ternarylm", repo / "ternarylm", ignore=shutil.ignore_patterns("__pycache__"))
    _git(repo, "init", "-q")
    _git(repo, "add", "ternarylm")
    _git(repo, "commit", "-q", "-m", "copy")
    head = _git(repo, "rev-parse", "HEAD").strip()
    assert _python(PRINT_GIT, repo, cwd=tmp_path)[1] == [head, False]
    (repo / "results.csv").write_text("an untracked output\n")
    assert _python(PRINT_GIT, repo, cwd=tmp_path)[1] == [head, False]  # untracked files do not count
    with open(repo / "ternarylm" / "io.py", "a") as f:
        f.write("# edited\n")
    assert _python(PRINT_GIT, repo, cwd=tmp_path)[1] == [head, True]


def _stage(tmp_path: Path, *args: str) -> str:
    """Run ``python -m ternarylm ARGS`` (from tmp_path, the package from this checkout)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ternarylm", *args]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return "python -m ternarylm " + " ".join(args)  # what provenance must record (no quoting needed)


def _check(prov: dict, command: str, threads: int, device: str = "cpu") -> None:
    assert prov["command"] == command
    assert prov["threads"] == threads and prov["device"] == device
    assert prov["git_commit"] == _git(ROOT, "rev-parse", "HEAD").strip()
    assert prov["versions"]["ternarylm"] and prov["versions"]["python"] == ".".join(
        map(str, sys.version_info[:3])
    )
    assert prov["created_utc"].endswith("+00:00")


def test_stage_artifacts_record_command_device_and_threads(tmp_path):
    """prepare -> tokenizer -> tokenize -> evaluate -> bench, each as the CLI runs them."""
    cfg = tmp_path / "cfg.yaml"
    config = {
        "data_source": "synthetic",
        "corpora": {"synthetic": {"train_docs": 60, "val_docs": 20}},
        "tokenizer": {"vocab_size": 200, "lowercase": True, "pretrained": None},
        "train": {"label_smoothing": 0.1, "batch_size": 4, "device": "cpu", "precision": "fp32"},
        "evaluate": {"train_batches": 1, "val_batches": 1},
        "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "ffn_hidden": 32, "seq_len": 8},
        "bench": {"formats": ["torch-fp32"], "batch_sizes": [1], "new_tokens": 2, "prompt_tokens": 2}
        | {"warmup": 0, "repeats": 1, "budget_s": 1e-9},
    }
    cfg.write_text(yaml.safe_dump(config))
    cpus = len(os.sched_getaffinity(0))
    cmd = _stage(tmp_path, "prepare", "--config", str(cfg), "--corpus", "synthetic", "--out-dir", "data")
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    _check(manifest["provenance"], cmd, threads=cpus)  # no torch: every CPU tokenizers may use
    tok = str(tmp_path / "tok.json")
    _stage(tmp_path, "tokenizer", "--config", str(cfg), "--train-text", "data/train.txt", "--out", tok)
    for split in ("train", "val"):
        args = (
            "--config",
            str(cfg),
            "--text",
            f"data/{split}.txt",
            "--tokenizer",
            tok,
            "--out",
            f"{split}.bin",
        )
        cmd = _stage(tmp_path, "tokenize", *args)
        meta = json.loads((tmp_path / f"{split}.json").read_text())
        assert meta["n_tokens"] > 0
        _check(meta["provenance"], cmd, threads=cpus)

    vocab = load_tokenizer(tok).get_vocab_size()
    model = build_model({**config["model"], "vocab_size": vocab}, seed=0)
    save_model(model, tmp_path / "m", {"variant": "ternary"})
    assert json.loads((tmp_path / "m" / "config.json").read_text())["provenance"]["device"] == "cpu"
    args = ["--config", str(cfg), "--model", "m", "--train", "train.bin", "--val", "val.bin"]
    cmd = _stage(tmp_path, "evaluate", *args, "--out", "eval.json", "--threads", "1")
    _check(json.loads((tmp_path / "eval.json").read_text())["provenance"], cmd, threads=1)

    cmd = _stage(tmp_path, "bench", "--config", str(cfg), "--make-random", "rnd", "--out", "b/results.csv")
    env = json.loads((tmp_path / "b" / "env.json").read_text())
    # bench.threads null = the CPUs this job may use: what its workers ran with
    _check(env["provenance"], cmd, threads=env["settings"]["threads"])
    assert env["settings"]["threads"] == cpus


def test_a_cuda_device_names_its_gpu(monkeypatch):
    """No GPU here: a stand-in torch whose CUDA API names two GPUs (the real one is torch.cuda)."""
    import types

    from ternarylm.provenance import device_info

    gpus = {"cuda": "GPU A", "cuda:1": "GPU B"}
    cuda = types.SimpleNamespace(is_available=lambda: True, get_device_name=gpus.__getitem__)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert device_info("cuda:1") == {"device": "cuda:1", "gpu": "GPU B"}
    assert device_info("cuda") == {"device": "cuda", "gpu": "GPU A"}
    assert device_info(None) == {"device": "cpu"} and device_info("cpu") == {"device": "cpu"}


@pytest.mark.parametrize("argv", [["/usr/bin/ternarylm", "evaluate", "--out", "a b.json"]])
def test_command_line_is_one_shell_line(argv):
    from ternarylm.provenance import command_line

    assert command_line(argv) == "ternarylm evaluate --out 'a b.json'"
    assert command_line([str(ROOT / "ternarylm" / "__main__.py"), "report"]) == "python -m ternarylm report"


def test_licence_and_citation_match_the_package():
    """CITATION.cff parses, has CFF 1.2.0's required keys, and names this version, licence and the paper."""
    import tomllib

    from ternarylm import __version__

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert {"cff-version", "message", "title", "authors"} <= set(cff) and cff["cff-version"] == "1.2.0"
    assert str(cff["version"]) == project["version"] == __version__
    assert cff["license"] == project["license"]["text"] == "MIT"
    paper = cff["preferred-citation"]
    assert "TernaryLM" in paper["title"] and "2602.07374" in paper["url"]
    assert [a["family-names"] for a in paper["authors"]] == ["Nargund", "Shukla"]
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "2026 ternarylm-repro contributors" in licence
