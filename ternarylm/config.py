"""Config validation shared by the Snakefile (parse time) and the CLI (before any stage runs).

Torch-free on purpose: the Snakefile and the report environment import it.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import math
import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ternarylm.io import UserError

# one schema file: the package's copy is a link to the workflow's (package data in pyproject.toml)
SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"
# every default lives in the root config.yaml; the package's copy is a link to it (package data)
DEFAULTS_PATH = Path(__file__).parent / "schemas" / "config.yaml"


@cache
def _defaults() -> dict[str, Any]:
    return yaml.safe_load(DEFAULTS_PATH.read_text(encoding="utf-8"))


def resolve(config: dict[str, Any] | None) -> dict[str, Any]:
    """``config`` merged over the root config.yaml, as Snakemake merges ``--configfile`` presets:
    every key a partial config lacks takes its one default (there is no second defaults dict to
    disagree). The CLI resolves once at load; library functions that take a config resolve it too,
    so a hand-built partial dict gets the same values."""
    return merge(_defaults(), config or {})


def canonical(node: Any) -> Any:
    """``node`` with every mapping's keys sorted, recursively (lists keep their order)."""
    if isinstance(node, dict):
        return {k: canonical(node[k]) for k in sorted(node)}
    return [canonical(v) for v in node] if isinstance(node, list) else node


@cache
def load_schema(partial: bool = False) -> dict[str, Any]:
    schema = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    if partial:  # a stage run by hand may pass only the sections it reads
        schema = _without_required(copy.deepcopy(schema))
    return schema


def _without_required(node: Any) -> Any:
    if isinstance(node, dict):
        node.pop("required", None)
        for v in node.values():
            _without_required(v)
    elif isinstance(node, list):
        for v in node:
            _without_required(v)
    return node


def _key(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _schema_error(e: Any) -> str:
    allowed = e.schema.get("enum") if isinstance(e.schema, dict) else None
    if e.validator == "additionalProperties":
        known = sorted(e.schema.get("properties", {}))
        return f"{_key(e.absolute_path)}: {e.message} (allowed keys: {', '.join(known)})"
    hint = f" (allowed: {', '.join(map(str, allowed))})" if allowed and e.validator != "enum" else ""
    return f"{_key(e.absolute_path)}: {e.message}{hint}"


def validate_schema(config: dict[str, Any], source: str = "config", partial: bool = False) -> None:
    """Raise UserError naming the first offending key (and its allowed values) of ``config``."""
    import jsonschema

    if not isinstance(config, dict):
        raise UserError(f"{source}: a config must be a mapping of keys, got {type(config).__name__}")
    validator = jsonschema.Draft202012Validator(load_schema(partial))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise UserError(f"{source}: {_schema_error(errors[0])}")


def _floats(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, float]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _floats(v, (*path, str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _floats(v, (*path, str(i)))
    elif isinstance(node, float):
        yield ".".join(path), node


def check_cross_fields(config: dict[str, Any], source: str = "config") -> None:
    """Checks the schema cannot express; the Snakefile calls this at parse time after ``validate``."""
    for key, value in _floats(config):
        # YAML's .nan/.inf pass every JSON-schema bound (comparisons with NaN are false)
        if not math.isfinite(value):
            raise UserError(f"{source}: {key} must be a finite number, got {value}")
    model = config.get("model") or {}
    d, h = model.get("d_model"), model.get("n_heads")
    if isinstance(d, int) and isinstance(h, int) and h > 0:
        if d % h:
            raise UserError(f"{source}: model.n_heads ({h}) must divide model.d_model ({d})")
        if (d // h) % 2:  # RoPE rotates pairs of channels
            raise UserError(f"{source}: head size d_model/n_heads = {d // h} must be even (RoPE)")
    for key in ("results_dir", "data_dir"):  # both are spelled into every shell rule's command
        if isinstance(config.get(key), str) and (bad := _SHELL_UNSAFE.search(config[key])):
            raise UserError(
                f"{source}: {key} {config[key]!r} holds {bad.group()!r}, which the workflow's shell "
                "commands would split or expand; choose a path without spaces or shell characters"
            )
    if "results_dir" in config:
        _check_results_dir(config["results_dir"], source)


# characters a POSIX shell splits on or expands in an unquoted word
_SHELL_UNSAFE = re.compile(r"[\s'\"$`;&|<>(){}\\*?!#\[\]]")


def _check_results_dir(value: Any, source: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{source}: results_dir must be a non-empty path, got {value!r}")
    path = Path(value)
    existing = next(p for p in (path, *path.parents, Path(".")) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{source}: results_dir {value}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{source}: results_dir {value}: {existing} is not writable")


def validate_config(config: dict[str, Any], source: str = "config", partial: bool = False) -> dict[str, Any]:
    """Schema + cross-field checks; ``partial`` (the CLI) does not require absent sections."""
    if not is_run_config(source):
        validate_schema(config, source, partial)
    check_cross_fields(config, source)
    return config


def is_run_config(path: str | os.PathLike) -> bool:
    """A run config the Snakefile wrote after validating it: results/config/<sha256[:12]>.json with
    exactly the content its name is the hash of. Its schema check is skipped because importing
    jsonschema alone costs ~2 s per job (its format checkers build grammars); an edited file no
    longer matches its name and is validated again."""
    path = Path(path)
    if path.parent.name != "config" or path.suffix != ".json" or len(path.stem) != 12:
        return False
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12] == path.stem
    except OSError:
        return False


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, section by section (Snakemake's ``--configfile`` rule)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# `ternarylm check-config`: what Snakemake would run with, checked before it parses anything --
# its own message for a YAML error names neither the file nor the line
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--configfile", nargs="*", default=[], type=Path, help="presets/overrides, as given to snakemake"
    )


def run(args: argparse.Namespace, config: dict[str, Any]) -> None:
    from ternarylm.io import load_config

    for path in args.configfile:
        config = merge(config, load_config(path))
    sources = " + ".join(map(str, [args.config, *args.configfile]))
    validate_config(config, sources)
    logging.getLogger("ternarylm.config").info("%s: valid", sources)
