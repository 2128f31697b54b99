"""One GPU per job: a GPU stage claims a free device and sees only that one.

Snakemake limits how many GPU jobs run at once (`resources: gpu=N` in the workflow profile) but
does not say which card each job gets. Each GPU stage therefore takes an exclusive file lock per
device (``fcntl.flock`` on LOCK_DIR/gpu<id>.lock, released by the kernel when the process exits,
also on kill -9) and sets CUDA_VISIBLE_DEVICES to that device before torch initialises CUDA.
A job that finds every device locked waits for one to be released (it logs once that it waits).
Torch-free on purpose: it must run before torch touches CUDA.

The lock folder is shared by every user of the machine (the GPUs are): it is created sticky and
world-writable (0o1777, like /tmp) and each lock file readable by all (a shared lock needs only a
read descriptor), so a second user's jobs lock the same files. A folder that cannot be used
(another user's folder from before, a bad TERNARYLM_GPU_LOCK_DIR) is one line naming it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from ternarylm.config import resolve
from ternarylm.io import UserError

log = logging.getLogger("ternarylm")

ENV = "CUDA_VISIBLE_DEVICES"
COUNT_ENV = "TERNARYLM_GPU_COUNT"  # overrides nvidia-smi's count (tests use it as a fake)
LOCK_DIR_ENV = "TERNARYLM_GPU_LOCK_DIR"
# stages whose rules request `gpu` (workflow/rules/*.smk); the others never touch CUDA
GPU_STAGES = ("pretrain", "evaluate", "finetune", "bench")
_held: list[int] = []  # lock fds, open until the process exits


def default_lock_dir() -> Path:
    # per machine, like the GPUs it guards; the same folder for every job of every run on it
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "ternarylm-gpu-locks")


def device_count(env: Mapping[str, str] = os.environ) -> int:
    if env.get(COUNT_ENV):
        value = env[COUNT_ENV].strip()
        if not value.isdigit():
            raise UserError(f"{COUNT_ENV} must be a number of GPUs (0, 1, 2, ...), got {env[COUNT_ENV]!r}")
        return int(value)
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.strip())


def device_pool(env: Mapping[str, str] = os.environ) -> list[str]:
    """Device ids this process may use: CUDA_VISIBLE_DEVICES if set (SLURM sets it), else all."""
    if ENV in env:
        return [d.strip() for d in env[ENV].split(",") if d.strip() and d.strip() != "-1"]
    return [str(i) for i in range(device_count(env))]


def bench_devices(devices: Sequence[str] | None, env: Mapping[str, str] = os.environ) -> list[str]:
    """``bench.devices``: an explicit list wins; null = cpu, plus cuda when this machine sees a GPU.

    Decided where the workflow is planned: under SLURM the login node usually has no GPU, so a
    cluster run that should bench on one lists ``[cpu, cuda]`` explicitly (docs/bench.md).
    """
    if devices is not None:
        return list(devices)
    return ["cpu", "cuda"] if device_pool(env) else ["cpu"]


def _open_lock(path: Path) -> int:
    """A read descriptor on ``path``, created world-readable if missing. Existing files are opened
    without O_CREAT: in a sticky world-writable folder the kernel refuses O_CREAT on another user's
    file (fs.protected_regular), although reading it is allowed."""
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # another job created it between the two calls
        return os.open(path, os.O_RDONLY)
    os.fchmod(fd, 0o644)  # not narrowed by this user's umask
    return fd


def try_lock(path: Path) -> int | None:
    try:
        fd = _open_lock(path)
    except OSError as e:
        raise _unusable(path.parent, e) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _unusable(lock_dir: Path, e: OSError) -> UserError:
    return UserError(
        f"GPU lock folder {lock_dir} is not usable ({e.strerror or e}); set {LOCK_DIR_ENV} to a folder "
        "every user of these GPUs can write (mode 1777), the same one for all of them"
    )


def make_lock_dir(lock_dir: Path) -> None:
    """Create ``lock_dir`` sticky and world-writable (0o1777) so every user shares it."""
    try:
        if lock_dir.is_dir():
            return
        lock_dir.mkdir(parents=True)
        os.chmod(lock_dir, 0o1777)  # mkdir's mode is narrowed by the umask
    except FileExistsError:
        if not lock_dir.is_dir():
            raise _unusable(lock_dir, NotADirectoryError(20, "not a directory")) from None
    except OSError as e:
        raise _unusable(lock_dir, e) from e


def claim(pool: Sequence[str], lock_dir: Path, poll_s: float = 0.5) -> str:
    """Lock the first free device of ``pool`` (waiting while all are taken) and return its id."""
    make_lock_dir(lock_dir)
    waited = False
    while True:
        for dev in pool:
            fd = try_lock(lock_dir / f"gpu{dev.replace('/', '_')}.lock")
            if fd is not None:
                _held.append(fd)
                return dev
        if not waited:
            log.info("all %d GPUs (%s) are in use by other jobs; waiting for one", len(pool), lock_dir)
            waited = True
        time.sleep(poll_s)


def pin_device(env: MutableMapping[str, str] = os.environ, lock_dir: Path | None = None) -> str | None:
    """Give this process one device; returns its id, or None when no GPU is visible."""
    pool = device_pool(env)
    if not pool:
        return None
    if len(pool) == 1 and ENV in env:
        return pool[0]  # already pinned (SLURM --gpus=1, or by hand): respect the scheduler
    dev = claim(pool, lock_dir or default_lock_dir())
    env[ENV] = dev
    log.info("GPU job pinned to device %s (%s=%s)", dev, ENV, dev)
    return dev


def stage_device(stage: str, args: Any, config: Mapping[str, Any]) -> str:
    """cpu, cuda or auto: where this stage will run."""
    if getattr(args, "device", None):
        return str(args.device)
    config = resolve(dict(config))
    if stage == "finetune":  # finetune.device null: train.device
        return str(config["finetune"]["device"] or config["train"]["device"])
    return str(config["train"]["device"])


def pin_for_stage(stage: str, args: Any, config: Mapping[str, Any]) -> str | None:
    if stage not in GPU_STAGES or stage_device(stage, args, config) == "cpu":
        return None
    return pin_device()
