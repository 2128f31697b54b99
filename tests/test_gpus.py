"""One GPU per job, on CPU with a fake device count: concurrent GPU jobs get
distinct devices, never more jobs than devices, a scheduler's CUDA_VISIBLE_DEVICES is respected."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

import pytest

from ternarylm import gpus
from ternarylm.io import UserError

FORK = mp.get_context("fork")  # fcntl locks are Linux/macOS only, and fork keeps the test fast


def hold_a_device(lock_dir: str, env: dict, hold_s: float, queue) -> None:
    env = dict(env)
    dev = gpus.pin_device(env, Path(lock_dir))
    start = time.monotonic()
    queue.put(("start", dev, env.get(gpus.ENV), start))
    time.sleep(hold_s)
    queue.put(("end", dev, None, time.monotonic()))


def run_jobs(tmp_path: Path, env: dict, n_jobs: int, hold_s: float) -> list[tuple]:
    queue = FORK.Queue()
    procs = [
        FORK.Process(target=hold_a_device, args=(str(tmp_path), env, hold_s, queue)) for _ in range(n_jobs)
    ]
    for p in procs:
        p.start()
    events = [queue.get(timeout=60) for _ in range(2 * n_jobs)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return sorted(events, key=lambda e: e[3])


def test_concurrent_jobs_get_distinct_devices_and_never_more_than_devices(tmp_path):
    events = run_jobs(tmp_path, {gpus.COUNT_ENV: "2"}, n_jobs=3, hold_s=1.0)
    holding: dict[str, int] = {}
    for kind, dev, visible, _ in events:
        if kind == "start":
            assert visible == dev  # the job sees exactly its device
            holding[dev] = holding.get(dev, 0) + 1
            assert holding[dev] == 1, f"device {dev} given to two running jobs"
            assert len(holding) <= 2 and sum(holding.values()) <= 2
        else:
            holding[dev] -= 1
            if not holding[dev]:
                del holding[dev]
    starts = [e for e in events if e[0] == "start"]
    assert {e[1] for e in starts} == {"0", "1"}
    # the third job waited for a release: it started after the first job ended
    first_end = next(e[3] for e in events if e[0] == "end")
    assert starts[2][3] >= first_end


def test_a_killed_job_releases_its_device(tmp_path):
    env = {gpus.COUNT_ENV: "1"}
    queue = FORK.Queue()
    p = FORK.Process(target=hold_a_device, args=(str(tmp_path), env, 60.0, queue))
    p.start()
    assert queue.get(timeout=30)[1] == "0"
    os.kill(p.pid, signal.SIGKILL)  # no cleanup code runs: the kernel drops the flock
    p.join(timeout=30)
    mine = dict(env)
    assert gpus.pin_device(mine, tmp_path) == "0" and mine[gpus.ENV] == "0"


def test_visible_devices_from_the_environment_are_the_pool(tmp_path):
    events = run_jobs(tmp_path, {gpus.ENV: "2,3"}, n_jobs=2, hold_s=0.5)
    assert {e[2] for e in events if e[0] == "start"} == {"2", "3"}


def test_a_device_pinned_by_the_scheduler_is_respected(tmp_path):
    env = {gpus.ENV: "5", gpus.COUNT_ENV: "8"}  # SLURM --gpus=1 sets CUDA_VISIBLE_DEVICES itself
    assert gpus.pin_device(env, tmp_path) == "5"
    assert env[gpus.ENV] == "5" and not list(tmp_path.iterdir())  # no lock taken


@pytest.mark.parametrize("env", [{gpus.COUNT_ENV: "0"}, {gpus.ENV: ""}, {gpus.ENV: "-1"}])
def test_no_visible_gpu_pins_nothing(tmp_path, env):
    before = dict(env)
    assert gpus.pin_device(env, tmp_path) is None
    assert env == before


@pytest.mark.parametrize(
    "stage, args, config, expected",
    [
        ("bench", Namespace(device="cpu"), {"train": {"device": "auto"}}, "cpu"),
        ("bench", Namespace(device="cuda"), {"train": {"device": "cpu"}}, "cuda"),
        ("pretrain", Namespace(), {"train": {"device": "cpu"}}, "cpu"),
        ("finetune", Namespace(), {"train": {"device": "cpu"}, "finetune": {"device": "cuda"}}, "cuda"),
        ("finetune", Namespace(), {"train": {"device": "auto"}, "finetune": {}}, "auto"),
    ],
)
def test_stage_device(stage, args, config, expected):
    assert gpus.stage_device(stage, args, config) == expected


def test_cpu_stages_never_claim_a_device(tmp_path, monkeypatch):
    monkeypatch.setenv(gpus.COUNT_ENV, "2")
    monkeypatch.setenv(gpus.LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(gpus.ENV, raising=False)
    assert gpus.pin_for_stage("pretrain", Namespace(), {"train": {"device": "cpu"}}) is None
    assert gpus.pin_for_stage("sparsity", Namespace(), {"train": {"device": "cuda"}}) is None
    assert gpus.ENV not in os.environ and not list(tmp_path.iterdir())


def test_default_profile_allows_as_many_gpu_jobs_as_visible_gpus(tmp_path):
    """No --workflow-profile: Snakemake reads profiles/default, which sets gpu=<visible GPUs>."""
    from helpers import copy_workflow, snakemake

    wd = copy_workflow(tmp_path / "wf")
    target = ("results/data/synthetic/train.txt", "--configfile", "workflow/presets/smoke.yaml")
    for count in ("2", "0"):
        r = snakemake(wd, "--cores", "1", *target, "--forceall", env={gpus.COUNT_ENV: count}, check=True)
        assert f'Resource("gpu", {count})' in r.stdout + r.stderr


def test_bad_gpu_count_or_lock_folder_is_one_line(tmp_path, capfd):
    """issue 22: TERNARYLM_GPU_COUNT=abc and an unusable TERNARYLM_GPU_LOCK_DIR were tracebacks."""
    with pytest.raises(UserError, match=r"TERNARYLM_GPU_COUNT must be a number of GPUs .*'abc'"):
        gpus.device_count({gpus.COUNT_ENV: "abc"})
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UserError, match=r"GPU lock folder .*a-file.* is not usable"):
        gpus.claim(["0"], blocker)
    cfg = tmp_path / "c.json"
    cfg.write_text("{}")
    argv = ["evaluate", "--config", str(cfg), "--model", "m", "--train", "t", "--val", "v", "--out", "o"]
    for env in ({gpus.COUNT_ENV: "abc"}, {gpus.COUNT_ENV: "1", gpus.LOCK_DIR_ENV: str(blocker / "x")}):
        proc = subprocess.run(
            [sys.executable, "-m", "ternarylm", *argv],
            env={**os.environ, **env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert next(iter(env)) in lines[0] or "lock folder" in lines[0]


def test_lock_folder_is_shared_by_every_user(tmp_path):
    """Created 1777 with world-readable lock files whatever the umask; another user locks them too."""
    lock_dir = tmp_path / "locks"
    old = os.umask(0o077)
    try:
        fd = gpus.try_lock(lock_dir / "gpu0.lock") if gpus.make_lock_dir(lock_dir) is None else None
    finally:
        os.umask(old)
    assert fd is not None
    assert (lock_dir.stat().st_mode & 0o7777, (lock_dir / "gpu0.lock").stat().st_mode & 0o777) == (
        0o1777,
        0o644,
    )
    os.close(fd)
    if os.geteuid() != 0:
        pytest.skip("the second-user half needs root (to become another user)")
    # where another user can reach it (pytest's own folders are 0o700)
    shared = Path(tempfile.mkdtemp(prefix="ternarylm-locks-"))
    os.chmod(shared, 0o755)
    lock_dir = shared / "locks"
    gpus.make_lock_dir(lock_dir)
    os.close(gpus.try_lock(lock_dir / "gpu0.lock"))  # root's file, as the first user's job leaves it
    private = shared / "private"  # a folder made by the old code: 0o755, owned by root
    private.mkdir(mode=0o755)
    queue = FORK.Queue()

    def as_nobody() -> None:
        os.setgid(65534)
        os.setuid(65534)
        out = []
        for d, dev in ((lock_dir, "0"), (lock_dir, "1"), (private, "0")):
            try:
                out.append(gpus.claim([dev], d))
            except UserError as e:
                out.append(str(e))
        queue.put(out)

    p = FORK.Process(target=as_nobody)
    p.start()
    got = queue.get(timeout=60)
    p.join(timeout=30)
    assert got[:2] == ["0", "1"]  # root's lock file, and a new one, both locked by user nobody
    assert "not usable (Permission denied)" in got[2] and gpus.LOCK_DIR_ENV in got[2]
    shutil.rmtree(shared)
