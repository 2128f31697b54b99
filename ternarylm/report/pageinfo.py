"""Which run made a report page: the footer every notebook ends with, and the run facts its prose
quotes (so no sentence hard-codes one preset's paths, epochs or times).

A page that leaves its folder (the committed realdata-mini claims.html) must still say what code,
config and machine made it: the footer gives the rendering commit (+ dirty), the date, the config
hash (the name of ``results/config/<hash>.json`` that every job of the run read), the devices and
the preset whose settings the config carries.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from ternarylm.provenance import git_state

REPO = Path(__file__).resolve().parents[2]
PRESETS_DIR = REPO / "workflow" / "presets"
# keys that name where a run writes, not what it computes: a preset is recognised without them
WHERE_KEYS = ("results_dir",)


def config_hash(config: dict[str, Any]) -> str:
    """The run config's content hash, computed as workflow/rules/common.smk names the file."""
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _leaves(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out |= _leaves(v, f"{key}.") if isinstance(v, dict) else {key: v}
    return out


def preset_name(config: dict[str, Any], presets_dir: Path = PRESETS_DIR) -> str:
    """The preset whose every setting the config carries ("smoke"), the same with the keys that
    differ ("realdata-mini, except bench.repeats"), or "config.yaml (paper preset)" / "custom".

    A preset file lists only what differs from config.yaml, so a config matches a preset when it
    holds each of the preset's leaves; the one with fewest mismatches (at most 3) is named.
    """
    ours = _leaves(config)
    best: tuple[int, str, list[str]] | None = None
    for path in sorted(presets_dir.glob("*.yaml")):
        wanted = _leaves(yaml.safe_load(path.read_text()) or {})
        diff = [k for k, v in wanted.items() if k not in WHERE_KEYS and ours.get(k) != v]
        if best is None or len(diff) < best[0]:
            best = (len(diff), path.stem, diff)
    if best is not None and best[0] == 0:
        return best[1]
    if best is not None and best[0] <= 3:
        return f"{best[1]}, except {', '.join(best[2])}"
    base = REPO / "config.yaml"
    if base.exists():
        paper = _leaves(yaml.safe_load(base.read_text()))
        if all(ours.get(k) == v for k, v in paper.items() if k not in WHERE_KEYS):
            return "config.yaml (paper preset)"
    return "custom"


def devices(config: dict[str, Any]) -> str:
    train = (config.get("train") or {}).get("device", "cpu")
    bench = (config.get("bench") or {}).get("devices") or []
    return f"training on {train}" + (f", benchmarks on {', '.join(bench)}" if bench else "")


def footer(config: dict[str, Any], now: datetime.datetime | None = None) -> str:
    """One Markdown line for the end of every report page."""
    commit, dirty = git_state()
    state = {True: " (uncommitted changes)", False: " (clean)", None: ""}[dirty]
    now = now or datetime.datetime.now(datetime.UTC)
    return (
        f"---\n*Rendered {now:%Y-%m-%d %H:%M} UTC by ternarylm at commit `{commit[:12]}`{state} · "
        f"config `{config_hash(config)}` · preset **{preset_name(config)}** · {devices(config)}.*"
    )
