"""The Snakemake DAG: plan of the paper preset, config validation, and the smoke run end to end."""

import json
import os
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from helpers import copy_workflow, job_counts, snakemake


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("dag"))


def test_paper_preset_plans_twins_times_seeds(workdir):
    r = snakemake(workdir, "-n", check=True)
    counts = job_counts(r.stdout)
    # 2 twins + the fp32-noncausal control (controls.noncausal) x 3 seeds on TinyStories
    assert counts["pretrain"] == 9
    assert counts["evaluate"] == 9
    assert counts["convergence"] == 2  # WritingPrompts and Shakespeare (ternary, seed 0)
    assert counts["finetune"] == 3 * 6  # MRPC, SST-2, CoLA x twins x seeds
    assert counts["finetune_scratch"] == 3 * 3  # the random-init control: every task x seed
    assert counts["sparsity"] == 6  # the twins only: the control is never sparsity-counted
    assert counts["deploy_gguf"] == 2  # nor deployed
    assert counts["bench"] == 1
    assert counts["prepare"] == 3 and counts["tokenizer"] == 1 and counts["tokenize"] == 6
    assert any(rule.startswith("report") for rule in counts)


def test_controls_off_plan_only_the_twins(workdir, tmp_path):
    off = tmp_path / "off.yaml"
    off.write_text(yaml.safe_dump({"controls": {"noncausal": False, "scratch": False}}))
    r = snakemake(workdir, "-n", "--configfile", str(off), check=True)
    counts = job_counts(r.stdout)
    assert counts["pretrain"] == 6 and counts["evaluate"] == 6 and counts["finetune"] == 18
    assert "finetune_scratch" not in counts and "fp32-noncausal" not in r.stdout


@pytest.mark.parametrize(
    "override, key",
    [
        ({"variants": ["int3"]}, "variants"),
        ({"seeds": [-1]}, "seeds"),
        ({"colour": "blue"}, "colour"),
        ({"train": {"lr": "fast"}}, "lr"),
        ({"data_source": "ftp"}, "data_source"),
    ],
)
def test_invalid_config_is_rejected_before_any_job(workdir, tmp_path, override, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    r = snakemake(workdir, "--cores", "1", "--configfile", str(bad))
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert key in out and "validat" in out.lower()
    assert not (workdir / "results" / "logs").exists()  # nothing ran


SMOKE = ("--configfile", "workflow/presets/smoke.yaml")


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_other_invocations_never_change_the_config_a_job_runs_with(tmp_path):
    """A dry run, --unlock or a run with other settings must not rewrite the
    resolved config that a job scheduled by an earlier invocation reads."""
    wd = copy_workflow(tmp_path / "wf")
    snakemake(wd, "--cores", "1", "results/data/synthetic/manifest.json", *SMOKE, check=True)
    printed = snakemake(wd, "-n", "-p", "results/tokenizer/tokenizer.json", *SMOKE, check=True).stdout
    config_path = wd / re.search(r"ternarylm tokenizer --config (\S+)", printed).group(1)
    preset_lr = yaml.safe_load((wd / SMOKE[1]).read_text())["train"]["lr"]
    assert json.loads(config_path.read_text())["train"]["lr"] == preset_lr
    before = snapshot(wd / "results")
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"train": {"lr": preset_lr * 7}}))
    snakemake(wd, "-n", *SMOKE, str(other), check=True)
    snakemake(wd, "-n", check=True)  # the paper preset
    snakemake(wd, "--unlock", *SMOKE, check=True)
    assert snapshot(wd / "results") == before  # nothing under results/ written by those calls
    again = snakemake(wd, "-n", "-p", "results/tokenizer/tokenizer.json", *SMOKE, check=True).stdout
    assert re.search(r"ternarylm tokenizer --config (\S+)", again).group(1) == str(
        config_path.relative_to(wd)
    )  # same settings, same file


def test_target_after_configfile_is_refused_in_one_line(workdir):
    target = workdir / "results" / "eval" / "synthetic" / "ternary" / "seed0.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"val_loss": 1.0}))  # an existing artifact would be read as config
    try:
        r = snakemake(workdir, "-n", *SMOKE, str(target.relative_to(workdir)))
    finally:
        target.unlink()
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "Targets go before --configfile" in out and "ValidationError" not in out


@pytest.mark.slow
def test_smoke_dag_produces_everything_and_reruns_nothing(smoke_workdir):
    results = smoke_workdir / "results"
    for sub in ("pretrain", "eval", "finetune", "sparsity", "bench", "notebooks", "figures", "tables"):
        assert (results / sub).is_dir(), sub
    assert (results / "claims.csv").exists()
    assert not (results / "ckpt" / "pretrain").exists() or not any(
        (results / "ckpt" / "pretrain").rglob("*.pt")
    )
    # the fine-tuning stage learns the synthetic paraphrase task: above the majority class on dev
    # (the twins; the scratch control need not, that is what it measures)
    twins = [p for p in (results / "finetune").rglob("metrics.json") if p.parent.parent.name != "scratch"]
    assert len(twins) == 4 and len(list((results / "finetune").rglob("scratch/seed*/metrics.json"))) == 2
    for metrics in twins:
        m = json.loads(metrics.read_text())
        assert m["dev"]["accuracy"] > m["majority"]["dev"]["accuracy"], metrics
    # the fp32-noncausal control sees the token it predicts: its training loss falls well below the
    # causal twin's (0.70x and 0.61x of it in the smoke preset's 120 steps)
    for seed in (0, 1):
        causal, control = (
            json.loads((results / "eval" / "synthetic" / v / f"seed{seed}.json").read_text())
            for v in ("fp32", "fp32-noncausal")
        )
        assert control["train_ce"] < 0.8 * causal["train_ce"], (seed, control, causal)
    for log in (results / "logs").rglob("*.log"):
        assert "Traceback" not in log.read_text(), log
    r = snakemake(smoke_workdir, "-n", "--configfile", "workflow/presets/smoke.yaml", check=True)
    assert "Nothing to be done" in r.stdout + r.stderr


@pytest.mark.slow
def test_rerun_semantics(smoke_workdir, tmp_path):
    target = "results/eval/synthetic/ternary/seed0.json"
    r = snakemake(
        smoke_workdir,
        "-n",
        target,
        "--forcerun",
        "pretrain",
        "--configfile",
        "workflow/presets/smoke.yaml",
        check=True,
    )
    counts = job_counts(r.stdout)
    assert counts.get("pretrain") == 1 and counts.get("evaluate") == 1 and "tokenize" not in counts
    # a changed hyperparameter reruns the jobs that use it, and only those
    preset = yaml.safe_load((smoke_workdir / "workflow/presets/smoke.yaml").read_text())
    preset["train"]["lr"] = 1e-3
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(preset))
    r = snakemake(smoke_workdir, "-n", "--configfile", str(changed), check=True)
    counts = job_counts(r.stdout)
    # the twins and the fp32-noncausal control, 2 seeds each; the scratch fine-tunes read no lr
    assert counts.get("pretrain") == 6 and "prepare" not in counts and "tokenize" not in counts
    assert "finetune_scratch" not in counts
    # a tokenizer setting reruns the tokenizer and everything downstream, not the data preparation
    preset = yaml.safe_load((smoke_workdir / "workflow/presets/smoke.yaml").read_text())
    preset["tokenizer"]["vocab_size"] = 400
    changed.write_text(yaml.safe_dump(preset))
    counts = job_counts(snakemake(smoke_workdir, "-n", "--configfile", str(changed), check=True).stdout)
    assert counts.get("tokenizer") == 1 and counts.get("tokenize") == 2 and counts.get("pretrain") == 6
    assert counts.get("finetune_scratch") == 2  # its vocabulary is the tokenizer's
    assert "prepare" not in counts


@pytest.mark.slow
def test_deleted_model_reruns_only_its_seed_chain(smoke_workdir, tmp_path):
    """Deleting one seed's weights plans that seed's pretrain and what reads its model, nothing else."""
    model = smoke_workdir / "results/pretrain/synthetic/ternary/seed1/model.safetensors"
    kept = tmp_path / "model.safetensors"
    os.replace(model, kept)  # a rename keeps the mtime, so putting it back restores the state
    try:
        r = snakemake(smoke_workdir, "-n", "--configfile", "workflow/presets/smoke.yaml", check=True)
    finally:
        os.replace(kept, model)
    counts = job_counts(r.stdout)
    assert {k: counts.get(k) for k in ("pretrain", "evaluate", "finetune", "sparsity")} == {
        "pretrain": 1,
        "evaluate": 1,
        "finetune": 1,  # the smoke preset fine-tunes MRPC only
        "sparsity": 1,
    }, counts
    for untouched in ("prepare", "tokenizer", "tokenize", "convergence", "bench"):
        assert untouched not in counts, counts  # bench reads seed 0 only
    jobs = r.stdout.split("\nrule ")
    planned_seeds = {
        w for j in jobs for w in ("seed0", "seed1") if j.startswith(("pretrain", "evaluate")) and w in j
    }
    assert planned_seeds == {"seed1"}, r.stdout[-3000:]
    assert any(k.startswith("report") for k in counts)  # the notebooks that read it are redone
    again = snakemake(smoke_workdir, "-n", "--configfile", "workflow/presets/smoke.yaml", check=True)
    assert "Nothing to be done" in again.stdout + again.stderr  # the model is back: state restored


@pytest.mark.slow
def test_snakemake_report_of_the_smoke_run(smoke_workdir):
    """README/catalog: `snakemake --report results/report.zip --configfile workflow/presets/smoke.yaml`."""
    r = snakemake(smoke_workdir, "--report", "results/report.zip", *SMOKE, check=True)
    report = smoke_workdir / "results" / "report.zip"
    assert report.stat().st_size > 10_000, r.stderr[-2000:]
    names = zipfile.ZipFile(report).namelist()
    assert any(n.endswith("claims.csv") for n in names) and any(n.endswith(".png") for n in names), names
