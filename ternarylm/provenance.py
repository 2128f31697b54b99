"""What produced an artifact: code version, library versions, machine, device, threads, command.

Every artifact JSON carries ``"provenance": provenance(...)`` so a number in a table can be traced
to the commit, the ``ternarylm ...`` call and the hardware that made it. Importing this module
does not import torch (``ternarylm.report`` stays torch-free); torch is only asked about when a
stage has already loaded it.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import shlex
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ternarylm import __version__

# distribution names whose versions change results or speed; absent ones are recorded as None
PACKAGES = ("torch", "numpy", "safetensors", "tokenizers", "transformers", "llama-cpp-python", "gguf")


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, bool | None]:
    """(commit sha, dirty) of the checkout this package runs from; ("unknown", None) outside git.

    One ``git status`` per process (cached). It runs in the package's folder, not the working
    directory, so the commit is that of this code wherever the command was started.
    ``dirty`` counts modified tracked files only: results/ and scratch files do not make it dirty.
    """
    here = Path(__file__).resolve().parent
    # GIT_OPTIONAL_LOCKS=0: never take .git/index.lock (parallel jobs, or a commit under way)
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    cmd = ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"]
    try:
        out = subprocess.run(cmd, cwd=here, env=env, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):  # no git binary, or it hangs
        return "unknown", None
    if out.returncode != 0:  # not a checkout (an installed copy), or git refuses the folder
        return "unknown", None
    lines = out.stdout.splitlines()
    sha = next((ln.split()[2] for ln in lines if ln.startswith("# branch.oid ")), "unknown")
    if sha == "(initial)":  # a repository without commits
        return "unknown", None
    return sha, any(not ln.startswith("#") for ln in lines)


def git_commit() -> str:
    """The commit sha of this code, or "unknown" outside a git checkout."""
    return git_state()[0]


def package_versions() -> dict[str, str | None]:
    """Installed versions (package metadata: nothing heavy is imported) plus python's."""
    out: dict[str, str | None] = {"python": platform.python_version(), "ternarylm": __version__}
    for dist in PACKAGES:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    torch = sys.modules.get("torch")
    if torch is not None:  # the running build (e.g. 2.5.1+cu124), more exact than the metadata
        out["torch"] = torch.__version__
        out["cuda"] = torch.version.cuda
    return out


def device_info(device: Any) -> dict[str, Any]:
    """``device`` as text, plus the GPU's name when it is a CUDA device."""
    name = str(device) if device is not None else "cpu"
    info: dict[str, Any] = {"device": name}
    torch = sys.modules.get("torch")
    if name.startswith("cuda") and torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(name)  # plain "cuda": the current device
    return info


def cpus_available() -> int:
    """CPUs this process may run on (its affinity: a SLURM or cgroup allocation), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def command_line(argv: list[str] | None = None) -> str:
    """The call that made the artifact, as one shell line (``ternarylm evaluate --model ...``)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    head = Path(argv[0]).name
    # `python -m ternarylm` has argv[0] = .../ternarylm/__main__.py; an entry point its full path
    argv[0] = "python -m ternarylm" if head == "__main__.py" else head
    return argv[0] + "".join(" " + shlex.quote(a) for a in argv[1:])


def provenance(
    *, device: Any = None, threads: int | None = None, argv: list[str] | None = None
) -> dict[str, Any]:
    """The ``"provenance"`` record of an artifact.

    ``device``: the device the job computed on (a torch.device or text; None = cpu, for stages
    without torch). ``threads``: the CPU threads it used; None = torch's setting when torch is
    loaded, else every CPU the process may use (what tokenizers and numpy use).
    ``argv``: default sys.argv.
    """
    commit, dirty = git_state()
    torch = sys.modules.get("torch")
    if threads is None:
        threads = torch.get_num_threads() if torch is not None else cpus_available()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": package_versions(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        **device_info(device),
        "threads": int(threads),
        "cpus_available": cpus_available(),
        "command": command_line(argv),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
