"""Resumable training state on disk, shared by pretraining and fine-tuning.

A checkpoint is trusted only if it is whole (sha256 sidecar), finite (checked before every save)
and owned by one trainer (a lock per directory). Anything else restarts from scratch, logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ternarylm.io import UserError, atomic_path, write_text

log = logging.getLogger("ternarylm.checkpoint")
LOCK_NAME = ".lock"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def rng_state(device: torch.device) -> dict[str, torch.Tensor | None]:
    return {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng(rng: dict[str, Any], device: torch.device) -> None:
    # torch.set_rng_state and torch.cuda.set_rng_state both take a CPU ByteTensor; a state that
    # travelled elsewhere (torch.load(map_location="cuda"), a cast) is brought back first
    torch.set_rng_state(rng["cpu"].detach().to("cpu", torch.uint8))
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"].detach().to("cpu", torch.uint8), device)


def is_finite(tensors: dict[str, torch.Tensor], *extra: torch.Tensor) -> bool:
    """All floating values finite; one host sync for the whole state, not one per tensor."""
    flags = [torch.isfinite(t).all() for t in [*tensors.values(), *extra] if t.is_floating_point()]
    return bool(torch.stack([f.cpu() for f in flags]).all()) if flags else True


class Checkpoint:
    """``DIR/NAME`` with its checksum ``DIR/NAME.sha256`` and the directory lock ``DIR/.lock``."""

    def __init__(self, directory: str | os.PathLike, name: str) -> None:
        self.dir = Path(directory)
        self.path = self.dir / name
        self.sums = self.dir / f"{name}.sha256"

    @contextlib.contextmanager
    def locked(self) -> Iterator[Checkpoint]:
        """Hold an exclusive lock on the directory: two trainers on one checkpoint would corrupt it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        f = open(self.dir / LOCK_NAME, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise UserError(
                f"{self.dir} is in use by another trainer (pid {holder}); stop it or wait for it to finish"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield self
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()

    def save(self, state: dict[str, Any], finite: bool, what: str) -> None:
        """Write ``state`` atomically with its checksum; refuse a non-finite state (``finite``)."""
        if not finite:
            raise UserError(f"non-finite {what}: not saved; last good checkpoint kept in {self.dir}")
        old = self._accepted()[:1]
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)
            # the sidecar lists the new hash and the one it replaces, and is written before the
            # rename: a crash between the two writes leaves a file that still matches
            write_text(self.sums, "\n".join([sha256_file(tmp), *old]) + "\n")
        log.info("%s saved -> %s", what, self.path)

    def load(self) -> dict[str, Any] | None:
        """The saved state on the CPU, or None (nothing saved, or not trustworthy: logged, removed)."""
        if not self.path.exists():
            return None
        problem = self._problem()
        if problem is None:
            try:
                # always to the CPU: map_location=cuda would move the RNG states off the CPU
                return torch.load(self.path, map_location="cpu", weights_only=True)
            except Exception as e:  # unpickling garbage raises anything
                problem = f"unreadable ({type(e).__name__})"
        log.warning("checkpoint %s is %s; discarding it and starting from scratch", self.path, problem)
        self.remove()
        return None

    def remove(self) -> None:
        for p in (self.path, self.sums):
            p.unlink(missing_ok=True)

    def _accepted(self) -> list[str]:
        try:
            return self.sums.read_text().split()
        except FileNotFoundError:
            return []

    def _problem(self) -> str | None:
        if self.path.stat().st_size == 0:
            return "empty"
        accepted = self._accepted()
        if not accepted:
            return f"without its checksum file {self.sums.name}"
        if sha256_file(self.path) not in accepted:
            return "corrupted (checksum mismatch)"
        return None
