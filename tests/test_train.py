import argparse
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY_TRAIN, tiny_model
from safetensors.torch import load_file

import ternarylm.train as train_mod
from ternarylm import sparsity, trajectory
from ternarylm.encode import encode_docs
from ternarylm.evaluate import evaluate_model
from ternarylm.io import UserError
from ternarylm.model import PROJECTIONS
from ternarylm.report.paper import GAUSS_ZERO_FRAC
from ternarylm.synthetic import synthetic_corpus
from ternarylm.tokenizer import train_tokenizer

MODEL = tiny_model(dropout=0.1)
TRAIN = dict(TINY_TRAIN)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    d = tmp_path_factory.mktemp("tokens")
    docs = synthetic_corpus(130, 0)
    tok = train_tokenizer(docs, 200)
    (d / "tok.json").write_text(tok.to_str())
    for split, part in (("train", docs[:110]), ("val", docs[110:])):
        ids = encode_docs(tok, part)
        ids.tofile(d / f"{split}.bin")
        (d / f"{split}.json").write_text(
            json.dumps({"n_tokens": len(ids), "vocab_size": tok.get_vocab_size()})
        )
    return d


def _run(tokens, out, ckpt, variant="ternary", **kw):
    tcfg = {**TRAIN, **kw.pop("tcfg", {})}
    job = train_mod.PretrainJob(tokens / "train.bin", tokens / "val.bin", out, ckpt, MODEL, tcfg, variant, 0)
    return train_mod.run_pretrain(job, **kw)


def _weights(d):
    return load_file(str(d / "model.safetensors"))


@pytest.mark.parametrize("variant", ["ternary", "fp32"])
def test_training_learns_and_writes_artifacts(tokens, tmp_path, variant, caplog):
    with caplog.at_level("INFO"):
        rows = _run(tokens, tmp_path / "out", tmp_path / "ckpt", variant)
    # progress: whole log lines (they render in a log file), every log_every=5 steps, with an ETA
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pretrain ")]
    assert [int(re.search(r"step (\d+)/", m)[1]) for m in lines] == list(range(5, 55, 5))
    assert re.fullmatch(
        rf"pretrain {variant} s0: step 5/54 \(9%\) loss \d+\.\d{{4}} [\d.]+k? tok/s eta \d+[smh]", lines[0]
    )
    assert (tmp_path / "out" / "model.safetensors").exists()
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["model"]["linear"] == variant and cfg["variant"] == variant
    header = (tmp_path / "out" / "metrics.csv").read_text().splitlines()[0]
    assert header == ",".join(train_mod.METRIC_FIELDS)
    assert rows[-1]["val_ce"] < rows[0]["val_ce"] and rows[-1]["train_loss"] < math.log(200)
    assert rows[-1]["val_loss"] > rows[-1]["val_ce"]  # label smoothing adds to the plain CE
    assert any(r["epoch"] == 1.0 for r in rows)  # a row at every epoch end
    assert not (tmp_path / "ckpt").exists()  # cleaned up after a finished run


def test_same_seed_same_result_and_resume_is_bitwise(tokens, tmp_path):
    full = _run(tokens, tmp_path / "a", tmp_path / "ca")
    again = _run(tokens, tmp_path / "b", tmp_path / "cb")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]  # noqa: E731
    assert strip(full) == strip(again)
    with pytest.raises(SystemExit):
        _run(
            tokens, tmp_path / "c", tmp_path / "cc", stop_after=13
        )  # interrupted mid-epoch, between checkpoints
    assert (tmp_path / "cc" / "ckpt.pt").exists() and not (tmp_path / "c").exists()
    resumed = _run(tokens, tmp_path / "c", tmp_path / "cc")
    assert strip(resumed) == strip(full)
    wa, wc = _weights(tmp_path / "a"), _weights(tmp_path / "c")
    assert all(torch.equal(wa[k], wc[k]) for k in wa)


def test_checkpoint_of_another_config_is_not_reused(tokens, tmp_path):
    with pytest.raises(SystemExit):
        _run(tokens, tmp_path / "o", tmp_path / "ck", stop_after=5)
    rows = _run(tokens, tmp_path / "o", tmp_path / "ck", tcfg={"lr": 1e-3})
    fresh = _run(tokens, tmp_path / "p", tmp_path / "ck2", tcfg={"lr": 1e-3})
    assert [r["val_ce"] for r in rows] == [r["val_ce"] for r in fresh]


def test_too_few_tokens_for_a_batch(tokens, tmp_path):
    with pytest.raises(UserError, match="fewer than one batch"):
        _run(tokens, tmp_path / "o", tmp_path / "c", tcfg={"batch_size": 10_000})


def test_nonfinite_loss_stops_and_keeps_last_checkpoint(tokens, tmp_path, monkeypatch):
    real_step = train_mod.train_step
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        loss = real_step(*a, **k)
        return loss * float("nan") if calls["n"] > 8 else loss

    monkeypatch.setattr(train_mod, "train_step", flaky)
    with pytest.raises(UserError, match="non-finite training loss at step 10"):
        _run(tokens, tmp_path / "o", tmp_path / "c")
    assert torch.load(tmp_path / "c" / "ckpt.pt", weights_only=False)["step"] == 7
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_evaluate_reports_both_perplexities(tokens, tmp_path):
    _run(tokens, tmp_path / "m", tmp_path / "c")
    cfg = {"train": TRAIN, "evaluate": {"train_batches": 3, "val_batches": None}}
    res = evaluate_model(tmp_path / "m", tokens / "train.bin", tokens / "val.bin", cfg)
    assert res["val_ppl"] == pytest.approx(math.exp(res["val_ce"]))
    assert res["val_ppl_smoothed"] == pytest.approx(math.exp(res["val_ce_smoothed"]))
    assert res["val_ce_smoothed"] > res["val_ce"]
    assert res["loss_ratio"] == pytest.approx(res["val_ce"] / res["train_ce"])
    assert res["n_train_tokens"] == 3 * 8 * 32
    # what it measured, from the model folder's own record (the claims engine reads these)
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert res["model"] == meta["model"] and res["trained"] == meta["train"]
    assert (res["variant"], res["seed"], res["val_batches"], res["train_batches"]) == (
        meta["variant"],
        meta["seed"],
        None,
        3,
    )


def test_sigterm_saves_checkpoint_and_rerun_resumes(tokens, tmp_path):
    """The CLI as a preempted SLURM job sees it: SIGTERM -> checkpoint + exit 143; rerun -> same model."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model": MODEL, "train": {**TRAIN, "epochs": 40, "ckpt_every": 1000}}))
    cmd = [
        sys.executable,
        "-m",
        "ternarylm",
        "pretrain",
        "--config",
        str(cfg),
        "--corpus",
        "synthetic",
        "--variant",
        "ternary",
        "--seed",
        "0",
        "--train",
        str(tokens / "train.bin"),
        "--val",
        str(tokens / "val.bin"),
        "--out-dir",
        str(tmp_path / "out"),
        "--ckpt-dir",
        str(tmp_path / "ck"),
    ]
    log = open(tmp_path / "log.txt", "w")
    proc = subprocess.Popen(cmd, stderr=log, stdout=log, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while "step 10/" not in (tmp_path / "log.txt").read_text() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    step = torch.load(tmp_path / "ck" / "ckpt.pt", weights_only=False)["step"]
    assert step >= 10 and not (tmp_path / "out").exists()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resumed from {tmp_path / 'ck' / 'ckpt.pt'} at step {step}" in r.stderr
    uninterrupted = _run(tokens, tmp_path / "ref", tmp_path / "ck_ref", tcfg={"epochs": 40})
    assert uninterrupted
    wa, wb = _weights(tmp_path / "out"), _weights(tmp_path / "ref")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_tiny_ternary_model_overfits_a_fixed_batch():
    cfg = {**MODEL, "vocab_size": 50, "dropout": 0.0}
    model = train_mod.build_model({**cfg, "linear": "ternary"}, seed=0)
    tcfg = {**TRAIN, "lr": 1e-2, "warmup_frac": 0.05}
    device = torch.device("cpu")
    opt, ctx = train_mod.make_optimizer(model, tcfg, device), train_mod.autocast_context(device, "fp32")
    sched = train_mod.make_scheduler(opt, tcfg, 60)
    x = torch.randint(0, 50, (4, 33), generator=torch.Generator().manual_seed(0))
    losses = [
        train_mod.train_step(model, x[:, :-1], x[:, 1:], opt, sched, tcfg, ctx).item() for _ in range(60)
    ]
    assert losses[-1] < 0.5 * losses[0]


# --- the controls: fp32-noncausal, sparsity at init -------------------------------------------


def _initial_weights(monkeypatch) -> dict[str, torch.Tensor]:
    """Filled with the weights the trainer starts from, captured when it builds its optimizer."""
    seen: dict[str, torch.Tensor] = {}
    real = train_mod.make_optimizer

    def capture(model, *args, **kwargs):
        seen.clear()
        seen.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(train_mod, "make_optimizer", capture)
    return seen


def test_noncausal_control_trains_from_the_fp32_twins_init(tokens, tmp_path, monkeypatch):
    from ternarylm.report.formats import NONCAUSAL

    parser = argparse.ArgumentParser()
    train_mod.add_arguments(parser)
    args = ["--corpus", "c", "--seed", "0", "--train", "t", "--val", "v", "--out-dir", "o", "--ckpt-dir", "k"]
    assert parser.parse_args([*args, "--variant", NONCAUSAL]).variant == NONCAUSAL
    inits = {}
    for v in ("fp32", NONCAUSAL):
        inits[v] = _initial_weights(monkeypatch)
        _run(tokens, tmp_path / v, tmp_path / f"ckpt-{v}", v, tcfg={"max_steps": 2})
        monkeypatch.undo()
    saved = {v: json.loads((tmp_path / v / "config.json").read_text()) for v in inits}
    assert saved[NONCAUSAL]["model"]["causal"] is False and saved[NONCAUSAL]["model"]["linear"] == "fp32"
    assert saved[NONCAUSAL]["variant"] == NONCAUSAL and saved["fp32"]["model"]["causal"] is True
    assert inits["fp32"].keys() == inits[NONCAUSAL].keys() and inits["fp32"]
    assert all(torch.equal(inits["fp32"][k], inits[NONCAUSAL][k]) for k in inits["fp32"])


def test_sparsity_frac_zero_init_is_the_trainers_starting_point(tokens, tmp_path, monkeypatch):
    import pandas as pd

    from ternarylm.cli import main
    from ternarylm.sparsity import code_stats

    init = _initial_weights(monkeypatch)
    _run(tokens, tmp_path / "out", tmp_path / "ckpt", "ternary", tcfg={"max_steps": 3, "lr": 0.05})
    csv_path = tmp_path / "sparsity.csv"
    root = Path(__file__).resolve().parents[1]
    argv = ["sparsity", "--config", str(root / "config.yaml"), "--model", str(tmp_path / "out")]
    assert main([*argv, "--out", str(csv_path)]) == 0
    df = pd.read_csv(csv_path)
    rows = df[df["module"] != "all"]
    for r in rows.itertuples():
        part = "attn" if r.module in ("q", "k", "v", "o") else "mlp"
        key = "tok_emb.weight" if r.layer == "Emb" else f"layers.{r.layer_index - 1}.{part}.{r.module}.weight"
        assert r.frac_zero_init == pytest.approx(code_stats(init[key])["frac_zero"], abs=1e-12), key
    assert (rows["frac_zero"] - rows["frac_zero_init"]).abs().max() > 0  # 3 steps at a high lr moved it
    pooled = df[df["module"] == "all"]
    assert pooled["frac_zero_init"].between(0.25, 0.37).all()  # Gaussian init: about 31 % zeros


def test_trajectory_is_recorded_without_changing_training(tokens, tmp_path, monkeypatch):
    """trajectory.csv: step 0 and every eval step, per projection + a pooled row per layer; recording
    it draws no random number and touches no weight (a run without it is bitwise the same)."""
    rows = _run(tokens, tmp_path / "a", tmp_path / "ca")
    traj = list(csv.DictReader((tmp_path / "a" / "trajectory.csv").open()))
    assert list(traj[0]) == trajectory.FIELDS
    steps = sorted({int(r["step"]) for r in traj})
    assert steps == [0] + [r["step"] for r in rows]
    per_step = 2 * (len(PROJECTIONS) + 1)  # 2 layers x (7 projections + "all")
    assert len(traj) == per_step * len(steps)
    assert all(r["quantized"] == "True" for r in traj)
    init = [float(r["frac_zero"]) for r in traj if r["step"] == "0" and r["module"] == "all"]
    assert all(abs(z - GAUSS_ZERO_FRAC) < 0.03 for z in init)  # Gaussian init: ~31 % zeros
    assert all(float(r["train_eval_ce"]) > 0 for r in rows)  # eval-mode train loss at every eval row
    monkeypatch.setattr(train_mod.trajectory, "trajectory_rows", lambda *a, **k: [])
    off = _run(tokens, tmp_path / "b", tmp_path / "cb")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]  # noqa: E731
    assert strip(off) == strip(rows)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resumed_run_keeps_its_trajectory(tokens, tmp_path):
    _run(tokens, tmp_path / "a", tmp_path / "ca", "fp32")
    with pytest.raises(SystemExit):
        _run(tokens, tmp_path / "c", tmp_path / "cc", "fp32", stop_after=13)
    _run(tokens, tmp_path / "c", tmp_path / "cc", "fp32")
    full, resumed = ((tmp_path / d / "trajectory.csv").read_text() for d in "ac")
    assert resumed == full
    assert ",False," in full  # the fp32 twin's weights: counted as a control, flagged unquantized


def test_weight_stats_shape_explains_zeros():
    """Gaussian: 31 % zeros, mean|w|/std 0.80, kurtosis 0; Laplace (heavier tails): 39 %, 0.71, 3."""
    g = torch.Generator().manual_seed(0)
    gauss = trajectory.weight_stats(torch.randn(400, 500, generator=g))
    assert gauss["frac_zero"] == pytest.approx(GAUSS_ZERO_FRAC, abs=0.005)
    assert gauss["absmean_over_std"] == pytest.approx(math.sqrt(2 / math.pi), abs=0.005)
    assert gauss["excess_kurtosis"] == pytest.approx(0.0, abs=0.1)
    lap = trajectory.weight_stats(torch.distributions.Laplace(0.0, 1.0).sample((400, 500)))
    assert lap["frac_zero"] == pytest.approx(1 - math.exp(-0.5), abs=0.005)
    assert lap["absmean_over_std"] == pytest.approx(1 / math.sqrt(2), abs=0.01)
    assert lap["excess_kurtosis"] == pytest.approx(3.0, abs=0.3)
    w = torch.randn(64, 64, generator=g)
    assert (
        trajectory.weight_stats(w)["frac_zero"] == sparsity.code_stats(w)["frac_zero"]
    )  # the forward's codes
