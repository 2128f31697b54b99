"""Atomic artifact writing, config loading and logging shared by every stage.

Every file a stage produces is written to a temporary sibling and renamed into place, so an
interrupted job never leaves a half-written artifact that Snakemake would mistake for output.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import glob
import importlib
import json
import logging
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

_UMASK = os.umask(0)
os.umask(_UMASK)


class UserError(Exception):
    """A problem the user can fix (bad input file, bad config). Reported as one line, no traceback."""


# optional dependency (import name) -> the extra that installs it
EXTRAS = {"llama_cpp": "deploy", "snakemake_executor_plugin_slurm": "slurm"}
_HOST = socket.gethostname().replace(".", "_")
# a temporary of another host cannot be probed for life; it is stale after this long
STALE_FOREIGN_S = 24 * 3600
# torch.save's messages when the disk fills up mid-write
_TORCH_WRITE_ERRORS = ("unexpected pos", "file write failed", "PytorchStreamWriter failed")
# a full disk as other writers report it: safetensors' SafetensorError (neither OSError nor
# RuntimeError) carries the OS message; numpy's tofile (the GGUF writer) raises a short write
# without an errno
_NEARLY_FULL = 1 << 20  # bytes free under which a write error without errno is a full disk
_FULL_DISK = re.compile(
    r"No space left on device|os error 28|Disk quota exceeded|\d+ requested and \d+ written"
)


def require(module: str, extra: str | None = None) -> Any:
    """Import a dependency, or one line naming what installs it: its extra, or (not an extra's, e.g.
    gguf) the package itself."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra = extra or EXTRAS.get(module)
        hint = (
            f"pip install 'ternarylm[{extra}]'"
            if extra
            else "a core dependency: reinstall ternarylm (pip install -e .)"
        )
        raise UserError(f"{module} is not installed: {hint}") from e


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temporaries(path: Path) -> None:
    """Delete temporaries of ``path`` left by interrupted writers (killed, out of disk, ...).

    A temporary names its writer (``.NAME.PID@HOST.XXXX.tmp``), so a live writer's file is kept.
    """
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)@([^.]+)\.[^.]+\.tmp$")
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        m = pattern.match(tmp.name)
        with contextlib.suppress(OSError):
            if m and m.group(2) == _HOST:
                stale = not _pid_alive(int(m.group(1)))
            else:  # another host's writer, or a temporary from before writers were named
                stale = time.time() - tmp.stat().st_mtime > STALE_FOREIGN_S
            if stale:
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()  # atomic_dir's are folders
                logging.getLogger("ternarylm").info("removed stale temporary %s", tmp)


def _write_error(path: Path, e: BaseException) -> UserError | None:
    """One line for a failed write a user can fix, or None for a real bug."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"no space left on device: {path}")
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(f"cannot write {path}: {e.strerror}")
    if isinstance(e, RuntimeError) and any(m in str(e) for m in _TORCH_WRITE_ERRORS):
        # torch.save's writer drops the errno: a (nearly) full file system says which it was
        with contextlib.suppress(OSError):
            if shutil.disk_usage(path.parent).free < _NEARLY_FULL:
                return UserError(f"no space left on device: {path}")
        return UserError(f"no space left on device (or write failed): {path}")
    if not isinstance(e, UserError) and _FULL_DISK.search(str(e)):
        return UserError(f"no space left on device: {path}")
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    try:
        if path.is_dir():
            raise UserError(f"cannot write {path}: it is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}@{_HOST}.", suffix=".tmp", dir=path.parent
        )
    except OSError as e:
        raise (_write_error(path, e) or UserError(f"cannot write {path}: {e.strerror or e}")) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts get the usual mode
        os.replace(tmp_path, path)
    except Exception as e:  # every writer's way of saying "disk full" becomes the same one line
        err = _write_error(path, e)
        if err is None:
            raise
        raise err from e
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder of ``path``; only when the block completes is it renamed onto
    ``path`` (an older folder there is replaced). A failure leaves no folder that looks like output."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file; the output is a folder: choose another path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}@{_HOST}.", suffix=".tmp", dir=path.parent)
        )
    except OSError as e:
        raise (_write_error(path, e) or UserError(f"cannot write {path}: {e.strerror or e}")) from e
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        old = path.with_name(f"{tmp.name}.old")
        if path.exists():  # two renames: a reader sees the old folder or the new one, never half
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except Exception as e:
        err = _write_error(path, e)
        if err is None:
            raise
        raise err from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    try:  # NaN/Infinity are not JSON: refuse them rather than write a file nothing can read
        text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    except ValueError as e:
        bad = ", ".join(k for k, v in _flat(obj) if isinstance(v, float) and not math.isfinite(v))
        raise UserError(f"{path}: refusing to write non-finite values ({bad or e})") from e
    write_text(path, text + "\n")


def _flat(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flat(v, f"{prefix}{k}.")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _flat(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), _json_default(obj) if hasattr(obj, "item") else obj


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise UserError(f"missing file: {path}")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from e


def write_csv(
    path: str | os.PathLike, rows: Sequence[dict[str, Any]], fields: Sequence[str] | None = None
) -> None:
    """Write a list of dicts as CSV (columns = ``fields`` or the union of keys in order)."""
    if fields is None:
        fields = []
        for r in rows:
            fields.extend(k for k in r if k not in fields)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)


# the expanded size (nodes, aliases followed) a config may have: thousands of times any real preset;
# a "billion laughs" alias bomb passes it only after exponential expansion, which is refused first
MAX_CONFIG_NODES = 100_000


def load_yaml_strict(text: str, source: str | os.PathLike) -> Any:
    """``yaml.safe_load`` that refuses what PyYAML lets through silently: a duplicate key (it keeps the
    last one) names the key and both lines; aliases that expand past MAX_CONFIG_NODES (a walk over
    the config would hang) are refused in linear time."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return None
    sizes: dict[int, int] = {}
    _check_yaml_node(root, str(source), sizes)
    return yaml.safe_load(text)


def _check_yaml_node(node: yaml.Node, source: str, sizes: dict[int, int]) -> int:
    """Expanded size of ``node`` (each node counted once per reference), duplicate keys refused."""
    if id(node) in sizes:  # an alias: its size is known, the walk does not repeat it
        size = sizes[id(node)]
    elif isinstance(node, yaml.MappingNode):
        sizes[id(node)] = 0  # a recursive alias counts as nothing more
        seen: dict[Any, int] = {}
        size = 1
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise UserError(
                        f"{source}:{line}: duplicate key {key.value!r} (also on line {seen[key.value]}); "
                        "YAML would silently keep only the last"
                    )
                seen[key.value] = line
            size += _check_yaml_node(key, source, sizes) + _check_yaml_node(value, source, sizes)
    elif isinstance(node, yaml.SequenceNode):
        sizes[id(node)] = 0
        size = 1 + sum(_check_yaml_node(v, source, sizes) for v in node.value)
    else:
        size = 1
    sizes[id(node)] = size
    if size > MAX_CONFIG_NODES:
        raise UserError(
            f"{source}:{node.start_mark.line + 1}: the config expands to more than {MAX_CONFIG_NODES:,} "
            "values through its aliases (an alias bomb?); write it without anchors/aliases"
        )
    return size


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Load a resolved config (JSON or YAML) as passed by the Snakemake rules."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"config file not found: {path}")
    if not path.is_file():
        raise UserError(f"{path}: config is not a file")
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text) if path.suffix == ".json" else (load_yaml_strict(text, path) or {})
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}:{e.colno}: cannot parse config ({e.msg})") from e
    except yaml.YAMLError as e:  # its own message spans lines and names "<unicode string>"
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise UserError(f"{path}{where}: cannot parse config ({getattr(e, 'problem', None) or e})") from e


def setup_logging(verbose: bool = False) -> logging.Logger:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    return logging.getLogger("ternarylm")
