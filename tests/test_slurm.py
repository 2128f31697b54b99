"""SLURM execution: the profiles' GPU requests (dry run, no cluster needed), and the smoke DAG run
through a real SLURM cluster: every artifact compared with the same DAG run locally, and a cancelled
pretrain job that is resubmitted, resumes, and ends with the weights of an uninterrupted run.

The cluster tests need `sinfo` to answer and a partition named `debug` (the single-node cluster that
.ci/slurm.sh starts with ../shared/cluster/local-slurm.sh); otherwise they are skipped. The jobs run
on the cluster's nodes, so the work directory must be on a file system they share: by default pytest's
tmp dir (fine for a single-node cluster), or $TERNARYLM_SLURM_TMP.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
import yte
from helpers import ROOT, copy_workflow, job_counts, snakemake

PROFILES = ROOT / "workflow" / "profiles"
SMOKE = "workflow/presets/smoke.yaml"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")


# --------------------------------------------------------------------------- profiles (no cluster)


def has_plugin() -> bool:
    return importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None


def profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def rules_in_workflow() -> dict[str, str]:
    """{rule name: body text} of workflow/rules/*.smk; a ``use rule A as B with:`` rule's body is
    A's followed by its own overrides (Snakemake's inheritance)."""
    rules, parents = {}, {}
    head = re.compile(r"^(?:(?:rule|checkpoint)\s+(\w+)|use rule (\w+) as (\w+) with)\s*:", re.M)
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        heads = list(head.finditer(text))
        for i, m in enumerate(heads):
            name = m.group(1) or m.group(3)
            rules[name] = text[m.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
            if m.group(2):
                parents[name] = m.group(2)
    return {name: rules.get(parents.get(name), "") + body for name, body in rules.items()}


def gpu_rules() -> set[str]:
    """Rules whose resources ask for a GPU (`gpu=` in their resources)."""
    return {name for name, body in rules_in_workflow().items() if re.search(r"^\s+gpu\s*=", body, re.M)}


def test_profiles_parse_and_use_the_slurm_executor(monkeypatch):
    for name in ("slurm", "slurm-local"):
        p = profile(name)
        assert p["executor"] == "slurm"
        assert p["retries"] >= 1, "a cancelled/preempted job must be resubmitted"
        assert "runtime" in p["default-resources"] and "mem_mb" in p["default-resources"]
    assert profile("slurm-local")["slurm-status-command"] == "squeue"  # no slurmdbd on the test cluster
    # the default (= local) profile: as many GPU jobs at once as visible GPUs, each on its own card
    assert (PROFILES / "local").resolve() == (PROFILES / "default").resolve()
    monkeypatch.setenv("TERNARYLM_GPU_COUNT", "3")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with open(PROFILES / "default" / "config.yaml") as f:
        default = yte.process_yaml(f, require_use_yte=True)  # how Snakemake reads profiles
    assert default["resources"]["gpu"] == 3


def test_profiles_name_only_real_rules():
    rules = set(rules_in_workflow())
    for name in ("slurm", "slurm-local"):
        unknown = set(profile(name).get("set-resources", {})) - rules
        assert not unknown, f"profile {name} sets resources of rules that do not exist: {sorted(unknown)}"


def test_every_gpu_rule_is_routed():
    """The real profile sends GPU rules to the GPU partition; the test cluster (no GPU) drops the request."""
    gpus = gpu_rules()
    assert {"pretrain", "evaluate"} <= gpus
    slurm, local = profile("slurm")["set-resources"], profile("slurm-local")["set-resources"]
    for rule in gpus:
        assert slurm.get(rule, {}).get("slurm_partition"), f"slurm profile: {rule} has no GPU partition"
        assert local.get(rule, {}).get("gpu") == 0, f"slurm-local profile: {rule} would ask for a GPU"


def unrouted(prof: dict, rules: set[str]) -> list[str]:
    """The rules of ``rules`` that profile ``prof`` gives no set-resources entry."""
    return sorted(r for r in rules if not (prof.get("set-resources") or {}).get(r))


def gpu_jobs(tmp_path: Path) -> dict[str, set[str]]:
    """{rule: `ternarylm` stages its jobs run} of every job that asks for a GPU in a dry run of the
    paper preset with bench on cpu and cuda (4 GPUs offered, so no request is capped to 0)."""
    wd = copy_workflow(tmp_path / "wf")
    (tmp_path / "cuda.yaml").write_text(yaml.safe_dump({"bench": {"devices": ["cpu", "cuda"]}}))
    out = snakemake(
        wd, "-n", "-p", "--resources", "gpu=4", "--configfile", str(tmp_path / "cuda.yaml"), check=True
    )
    jobs, rule, gpu = {}, None, False
    for line in out.stdout.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            rule, gpu = m.group(1), False
        elif line.startswith("    resources: "):
            gpu = re.search(r"\bgpu=[1-9]", line) is not None
        elif gpu and (m := re.match(r"^Shell command: ternarylm (\S+)", line)):
            jobs.setdefault(rule, set()).add(m.group(1))
    return jobs


def test_slurm_profiles_route_every_gpu_rule_and_gpu_stages_agree(tmp_path):
    """The three places that name the GPU work agree: the rules that ask for a GPU (what Snakemake
    plans, inheritance included), both SLURM profiles' set-resources, and gpus.GPU_STAGES."""
    from ternarylm.gpus import GPU_STAGES

    jobs = gpu_jobs(tmp_path)
    gpus = set(jobs)
    assert {"pretrain", "convergence", "evaluate", "finetune", "finetune_scratch", "bench"} <= gpus
    assert gpus == gpu_rules(), "the rules' text and the planned jobs disagree on which ask for a GPU"
    for name in ("slurm", "slurm-local"):
        prof = profile(name)
        assert unrouted(prof, gpus) == [], f"profile {name}"
        for rule in gpus:  # the check bites: a profile that drops any one GPU rule is caught
            prof_without = {
                **prof,
                "set-resources": {k: v for k, v in prof["set-resources"].items() if k != rule},
            }
            assert unrouted(prof_without, gpus) == [rule]
    # the CLI pins a GPU for exactly the stages the GPU rules run
    assert set().union(*jobs.values()) == set(GPU_STAGES)


@pytest.mark.skipif(not has_plugin(), reason="needs snakemake-executor-plugin-slurm")
def test_slurm_profile_dry_run_requests_gpus(tmp_path):
    """Dry run of the paper preset with the real profile: what each job would ask sbatch for."""
    wd = copy_workflow(tmp_path / "wf")
    gpu_bench = tmp_path / "bench_cuda.yaml"
    gpu_bench.write_text(yaml.safe_dump({"bench": {"devices": ["cpu", "cuda"]}}))
    r = snakemake(
        wd, "-n", "--workflow-profile", "workflow/profiles/slurm", "--configfile", str(gpu_bench), check=True
    )
    seen, rule = set(), None
    for line in r.stdout.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif line.startswith("    resources: ") and rule not in (None, "all"):
            res = dict(kv.split("=", 1) for kv in line.split(": ", 1)[1].split(", ") if "=" in kv)
            # a job asks for a GPU exactly when it goes to the GPU partition
            assert (res.get("gpu", "0") == "1") == (res.get("slurm_partition") == "gpu"), (rule, res)
            assert rule in gpu_rules() or res.get("gpu", "0") == "0", (rule, res)
            if res.get("gpu") == "1":
                seen.add(rule)
            assert int(res["runtime"]) > 0 and int(res["mem_mb"]) > 0, (rule, res)
    assert {"pretrain", "convergence", "evaluate", "finetune", "bench"} <= seen


# --------------------------------------------------------------------------- a real cluster


@functools.cache
def cluster_up() -> bool:
    if not (shutil.which("sinfo") and shutil.which("scontrol") and has_plugin()):
        return False
    try:
        # fails at once when no controller answers (sinfo would retry for ~10 s)
        if subprocess.run(["scontrol", "ping"], capture_output=True, timeout=20).returncode != 0:
            return False
        r = subprocess.run(
            ["sinfo", "-h", "-p", "debug", "-o", "%D"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and r.stdout.strip() not in ("", "0")


NO_CLUSTER = "no SLURM cluster with a 'debug' partition (sinfo), or no snakemake-executor-plugin-slurm"


def slurm_states(ids: list[str]) -> dict[str, str]:
    """SLURM job states by id: sacct when accounting works, else squeue (finished jobs stay MinJobAge s)."""
    r = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(ids)], capture_output=True, text=True
    )
    if r.returncode != 0:
        r = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%T"], capture_output=True, text=True)
    states = dict(line.split("|", 1) for line in r.stdout.split() if "|" in line)
    return {i: states[i] for i in ids if i in states}


@pytest.fixture(scope="module")
def slurm_workdir(tmp_path_factory) -> Path:
    base = os.environ.get("TERNARYLM_SLURM_TMP")
    wd = Path(base) / f"slurm-{os.getpid()}" if base else tmp_path_factory.mktemp("slurm")
    return copy_workflow(wd)


@pytest.fixture(scope="module")
def smoke_on_slurm(slurm_workdir: Path) -> tuple[Path, subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    r = snakemake(slurm_workdir, "--workflow-profile", "workflow/profiles/slurm-local", "--configfile", SMOKE)
    return slurm_workdir, r, time.perf_counter() - t0


@pytest.fixture(scope="module")
def smoke_local(tmp_path_factory) -> Path:
    """The same smoke DAG run locally (no SLURM): the reference for the cluster's outputs."""
    wd = copy_workflow(tmp_path_factory.mktemp("local"))
    snakemake(wd, "--cores", "2", "--configfile", SMOKE, check=True)
    return wd


# fields that measure the machine, not the computation (timings, throughput)
# timings, and the provenance record (when and where a job ran: its time, host and CPU allocation
# differ between the SLURM and the local run by design)
VOLATILE = re.compile(r"seconds|per_s|elapsed|wall|date|time|^provenance$", re.I)
COMPUTED = ("tokenizer", "tokens", "pretrain", "eval", "finetune", "sparsity")  # bench: timings only


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not VOLATILE.search(k)}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def computed(path: Path) -> object:
    """One artifact's content without timings: JSON/CSV parsed, anything else (weights, tokens) by hash."""
    if path.suffix == ".json":
        return _strip(json.loads(path.read_text()))
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return [_strip(row) for row in csv.DictReader(f)]
    return sha256(path)


def computed_outputs(results: Path) -> dict[str, object]:
    """{path under results/: computed(path)} of every artifact the DAG computed (bench: timings only)."""
    return {
        str(p.relative_to(results)): computed(p)
        for sub in COMPUTED
        for p in sorted((results / sub).rglob("*"))
        if p.is_file()
    }


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.skipif(not cluster_up(), reason=NO_CLUSTER)
def test_smoke_dag_runs_through_slurm(smoke_on_slurm):
    wd, r, wall = smoke_on_slurm
    out = r.stdout + r.stderr
    print(f"smoke DAG through SLURM: {wall:.0f} s wall")
    assert r.returncode == 0, out[-5000:]
    # every job but the local `all` went through sbatch, each with its own SLURM job id and log
    planned = job_counts(out)
    submitted = SUBMITTED.findall(out)
    assert len(submitted) == sum(n for rule, n in planned.items() if rule not in ("all", "total"))
    ids = [sid for _, sid in submitted]
    assert len(set(ids)) == len(ids)
    logs = {p.stem: p for p in (wd / ".snakemake" / "slurm_logs").rglob("*.log")}
    for sid in ids:
        assert sid in logs, f"no .snakemake/slurm_logs/**/{sid}.log"
        text = logs[sid].read_text()
        assert "--executor slurm-jobstep" in text and "Finished jobid" in text, text[-2000:]
    rules_with_logs = {p.relative_to(wd / ".snakemake" / "slurm_logs").parts[0] for p in logs.values()}
    assert rules_with_logs == {f"rule_{rule}" for rule in planned if rule not in ("all", "total")}
    states = slurm_states(ids)
    assert states, "SLURM knows none of the submitted jobs"
    assert set(states.values()) == {"COMPLETED"}, states
    # and the results are complete: nothing left to do
    again = snakemake(wd, "-n", "--configfile", SMOKE, check=True)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.skipif(not cluster_up(), reason=NO_CLUSTER)
def test_slurm_outputs_equal_the_local_run(smoke_on_slurm, smoke_local):
    """Same seeds, same CPU threads: every computed artifact of the SLURM run equals the local run's
    (model weights bit for bit; metrics, evaluations, fine-tuning and sparsity tables field by field)."""
    wd, r, _ = smoke_on_slurm
    if r.returncode != 0:
        pytest.skip("the smoke DAG did not run through SLURM")
    on_slurm, local = computed_outputs(wd / "results"), computed_outputs(smoke_local / "results")
    assert sorted(on_slurm) == sorted(local)
    models = [k for k in local if k.endswith("model.safetensors")]
    # (2 twins + the fp32-noncausal control) x 2 seeds (the smoke preset's convergence corpus is its
    # main one: no extra runs); the scratch fine-tunes are compared too
    assert len(models) == 6 and any(k.startswith("eval/") for k in local), sorted(local)
    assert any("/fp32-noncausal/" in k for k in models) and any("/scratch/" in k for k in local)
    differ = [k for k in local if on_slurm[k] != local[k]]
    print(f"SLURM vs local: {len(local)} artifacts compared ({len(models)} models), {len(differ)} differ")
    assert not differ, {k: (on_slurm[k], local[k]) for k in differ[:3]}


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"snakemake exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.skipif(not cluster_up(), reason=NO_CLUSTER)
def test_cancelled_pretrain_is_resubmitted_and_resumes(smoke_on_slurm, smoke_local, tmp_path):
    """scancel a running pretrain job after its first checkpoint: Snakemake resubmits it (retries), the
    new SLURM job resumes from the checkpoint instead of starting over, and it ends with the weights of
    an uninterrupted run of the same job."""
    wd, first, _ = smoke_on_slurm
    if first.returncode != 0:
        pytest.skip("the smoke DAG did not run through SLURM")
    # a longer run of one twin from scratch, checkpointing often
    longer = tmp_path / "longer.yaml"
    longer.write_text(
        yaml.safe_dump(
            {"train": {"epochs": 3, "max_steps": 200, "ckpt_every": 20, "log_every": 20, "eval_every": 100}}
        )
    )
    target = "results/pretrain/synthetic/ternary/seed0/metrics.csv"
    rule_log = wd / "results" / "logs" / "pretrain" / "synthetic_ternary_seed0.log"
    rule_log.unlink(missing_ok=True)  # Snakemake deletes a job's log before every attempt anyway
    shutil.rmtree(
        wd / "results" / "ckpt" / "pretrain" / "synthetic" / "ternary" / "seed0", ignore_errors=True
    )
    read_log = lambda: rule_log.read_text() if rule_log.exists() else ""  # noqa: E731
    ckpt_saved = re.compile(r"checkpoint at step (\d+) saved")
    err = tmp_path / "snakemake.err"
    t0 = time.perf_counter()
    with err.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", target, "--forcerun", "pretrain"]
            + ["--workflow-profile", "workflow/profiles/slurm-local", "--configfile", SMOKE, str(longer)],
            cwd=wd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_for(lambda: SUBMITTED.search(err.read_text()), 120, "the pretrain submission", proc)
        first_id = SUBMITTED.search(err.read_text()).group(2)
        wait_for(lambda: ckpt_saved.search(read_log()), 150, "the first checkpoint", proc)
        before_cancel = max(int(s) for s in ckpt_saved.findall(read_log()))
        subprocess.run(["scancel", first_id], check=True)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
    wall = time.perf_counter() - t0
    out = err.read_text()
    print(f"cancel + resubmit + resume: {wall:.0f} s wall")
    assert proc.returncode == 0, out[-5000:]
    ids = [sid for _, sid in SUBMITTED.findall(out)]
    assert len(ids) == 2 and ids[0] == first_id, ids  # resubmitted once, as a new SLURM job
    assert re.search(rf"SLURM-job '{first_id}' failed, SLURM status is: 'CANCELLED'", out), out[-3000:]
    # the first attempt was killed by SIGTERM (its SLURM log survives; the rule log is the last attempt's)
    first_log = next((wd / ".snakemake" / "slurm_logs").rglob(f"{first_id}.log")).read_text()
    assert "SIGTERM" in first_log, first_log[-3000:]
    log = read_log()
    resumed = re.search(r"resumed from \S+ at step (\d+)/(\d+)", log)
    assert resumed, log[-3000:]
    step, total = int(resumed.group(1)), int(resumed.group(2))
    print(f"cancelled after checkpoint step {before_cancel}; resumed at step {step}/{total}")
    assert 0 < before_cancel <= step < total, (before_cancel, step, total)
    assert f"eval step {total}:" in log  # the resumed job ran to the end (its final evaluation)
    assert (wd / target).exists()
    assert slurm_states([first_id]).get(first_id, "CANCELLED").startswith("CANCELLED")
    # the same job run locally without interruption: identical weights and loss curve
    t0 = time.perf_counter()
    snakemake(
        smoke_local,
        target,
        "--forcerun",
        "pretrain",
        "--cores",
        "2",
        "--configfile",
        SMOKE,
        str(longer),
        check=True,
    )
    print(f"uninterrupted reference run: {time.perf_counter() - t0:.0f} s")
    run_dir = "results/pretrain/synthetic/ternary/seed0"
    assert sha256(wd / run_dir / "model.safetensors") == sha256(smoke_local / run_dir / "model.safetensors")
    resumed, reference = (
        computed(wd / run_dir / "metrics.csv"),
        computed(smoke_local / run_dir / "metrics.csv"),
    )
    assert resumed == reference and len(reference) >= 3  # every validation row, before and after the cancel
