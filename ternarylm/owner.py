"""One owner per results folder: which workflow instance (checkout, config, run) writes into it.

Snakemake's own lock and metadata live in each checkout's ``.snakemake/``, so two checkouts with
one ``results_dir`` would overwrite each other's models unnoticed, and the first checkout's
metadata would then call the second's outputs up to date. The results folder therefore records its
owner (``.owner.json``: checkout path, run config hash, run id) and a run holds ``.owner.lock``
(``flock``, released by the kernel when the process ends, so a killed run leaves no stale lock)
from its start to its end.

* a run while another instance holds the lock refuses in one line naming that instance;
* a folder owned by another checkout is refused, running or not, naming the owner;
  ``TERNARYLM_TAKE_OVER_RESULTS=1 snakemake --forceall ...`` takes it over, every output rebuilt
  (outputs made under another checkout's config are never trusted as up to date; the forceall is
  the user's because a Snakefile cannot set it).
* the same checkout with another config proceeds (Snakemake's params reruns the jobs whose
  settings changed) and the record names the new config.

Torch-free: the Snakefile imports it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import IO, Any

from ternarylm.io import UserError, write_json

RECORD = ".owner.json"
LOCK = ".owner.lock"
TAKE_OVER_ENV = "TERNARYLM_TAKE_OVER_RESULTS"
_HELD: list[IO[str]] = []  # the open lock of this process's run: held until the process exits


def record(checkout: str | os.PathLike, config_hash: str) -> dict[str, Any]:
    """This instance's owner record."""
    return {
        "checkout": str(Path(checkout).resolve()),
        "config_hash": config_hash,
        "run_id": uuid.uuid4().hex[:12],
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def read(results: str | os.PathLike) -> dict[str, Any] | None:
    try:
        rec = json.loads((Path(results) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def describe(rec: dict[str, Any]) -> str:
    return (
        f"checkout {rec.get('checkout')} (config {rec.get('config_hash')}, run {rec.get('run_id')}, "
        f"pid {rec.get('pid')} on {rec.get('host')}, started {rec.get('started_utc')})"
    )


def running(results: str | os.PathLike) -> bool:
    """Whether a run holds the folder's lock now."""
    path = Path(results) / LOCK
    if not path.exists():
        return False
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def take_over() -> bool:
    value = os.environ.get(TAKE_OVER_ENV, "")
    if value not in ("", "0", "1"):
        raise UserError(f"{TAKE_OVER_ENV}={value!r}: set it to 1 (take the results folder over) or 0")
    return value == "1"


def check(results: str | os.PathLike, mine: dict[str, Any], forceall: bool = False) -> bool:
    """At parse time (dry runs too): refuse a folder another instance uses or owns; returns True
    when this instance takes over another checkout's folder. Its outputs were made under another
    config and this checkout's metadata would call them up to date, so taking over needs
    ``forceall`` (snakemake --forceall: every output rebuilt)."""
    rec = read(results)
    if rec is None:
        return False
    live = running(results)
    # a results folder inside this checkout is this checkout's, wherever the checkout was moved
    inside = Path(mine["checkout"]) in Path(results).resolve().parents
    other_checkout = rec.get("checkout") != mine["checkout"] and not inside
    if live and (other_checkout or rec.get("config_hash") != mine["config_hash"]):
        raise UserError(
            f"results folder {results} is in use by a running workflow: {describe(rec)}; "
            "wait for it to finish, or choose another results_dir"
        )
    if other_checkout:
        if not (take_over() and forceall):
            raise UserError(
                f"results folder {results} belongs to {describe(rec)}; choose another results_dir, or "
                f"take it over with {TAKE_OVER_ENV}=1 snakemake --forceall (every output rebuilt)"
            )
        return True
    return False


def forceall_in(argv: list[str]) -> bool:
    """Whether a snakemake command line asks for --forceall (-F, also in a group such as -nF)."""
    return any(a == "--forceall" or (a[:1] == "-" and a[1:2] != "-" and "F" in a) for a in argv)


def acquire(results: str | os.PathLike, mine: dict[str, Any]) -> None:
    """At the start of a real run: hold the lock for the rest of this process and record ``mine``."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    f = open(results / LOCK, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        rec = read(results) or {}
        raise UserError(
            f"results folder {results} is in use by a running workflow: {describe(rec)}; "
            "wait for it to finish, or choose another results_dir"
        ) from None
    _HELD.append(f)
    write_json(results / RECORD, mine)


def release() -> None:
    """Give the lock back (tests; a real run's lock goes with its process)."""
    while _HELD:
        f = _HELD.pop()
        with contextlib.suppress(OSError):
            fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
