"""Comparability from the records: is what these artifacts measured the paper's setup?

Each check reads what an artifact recorded (model folder ``config.json``, training log, eval JSON,
manifest, token meta, tokenizer.json) and says, in words, how it differs from the paper; the run
config (``art.cfg``) is read only to name what was asked where the records say otherwise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from ternarylm.report.claims.records import Records, Trail
from ternarylm.report.paper import PAPER

SETUP = PAPER["setup"].value
ARCH = ("d_model", "n_layers", "n_heads", "seq_len", "vocab_size")
TRAIN = ("epochs", "batch_size", "lr", "warmup_frac", "label_smoothing")
# what the twins of one seed may differ in: the linear type (and the variant / model_dir names)
TWIN_FREE = {"linear"}


def _v(x: Any) -> str:
    if isinstance(x, (list, tuple)):
        return "none" if not x else " ".join(str(i) for i in x)
    if isinstance(x, float):
        return f"{x:g}"
    return "unset" if x is None else str(x)


# a results-folder path in a reason (one run's file): reasons that differ only by it are said once
RUN_PATH = re.compile(r"\b(?:pretrain|eval|finetune|sparsity)/[^\s,;:()]+")


def dedup(reasons: Sequence[str]) -> list[str]:
    """Each reason once; the same reason about several runs' files once, naming the files."""
    groups: dict[str, list[str]] = {}
    for r in dict.fromkeys(r for r in reasons if r):
        paths = RUN_PATH.findall(r)
        key = RUN_PATH.sub("{}", r, count=1) if len(paths) == 1 and "{" not in r else r
        groups.setdefault(key, []).extend(paths if key != r else [])
    return [k.replace("{}", _list(fs), 1) if fs else k for k, fs in groups.items()]


def arch_reasons(meta: dict[str, Any], where: str) -> list[str]:
    m = meta.get("model") or {}
    diffs = [f"{k} {_v(m.get(k))} (paper {_v(SETUP[k])})" for k in ARCH if m.get(k) != SETUP[k]]
    return [f"model ({where}): {', '.join(diffs)}"] if diffs else []


def quant_reasons(meta: dict[str, Any], variant: str, where: str) -> list[str]:
    """The ternary twin is ternary as the paper's (every projection, 8-bit activations); FP32 is not."""
    m = meta.get("model") or {}
    if variant == "ternary":
        out = []
        if m.get("linear") != "ternary":
            out.append(f"ternary twin is not ternary: linear {_v(m.get('linear'))} ({where})")
        if sorted(m.get("quantize") or []) != sorted(SETUP["quantize"]):
            out.append(
                f"ternary twin quantizes {_v(m.get('quantize'))} in {where} (paper every projection: "
                f"{_v(SETUP['quantize'])})"
            )
        if m.get("act_bits") != SETUP["act_bits"]:
            out.append(
                f"ternary twin act_bits {_v(m.get('act_bits'))} in {where} (paper {SETUP['act_bits']})"
            )
        return out
    if m.get("linear") != "fp32":
        return [f"FP32 twin is not full precision: linear {_v(m.get('linear'))} ({where})"]
    return []


def train_reasons(meta: dict[str, Any], where: str) -> list[str]:
    t = meta.get("train") or {}
    diffs = [f"{k} {_v(t.get(k))} (paper {_v(SETUP[k])})" for k in TRAIN if t.get(k) != SETUP[k]]
    if t.get("max_steps"):
        diffs.append(f"capped at max_steps {t['max_steps']}")
    device = str(((meta.get("provenance") or {}).get("device")) or "not recorded")
    if not device.startswith(SETUP["device"]):
        diffs.append(f"trained on {device} (paper {SETUP['device']})")
    return [f"training ({where}): {', '.join(diffs)}"] if diffs else []


def log_reasons(log: Any, meta: dict[str, Any], where: str) -> list[str]:
    """Epochs completed (training log) vs planned (config.json) and vs the paper's: a run that
    stopped early, or trained another number of epochs (said even where config.json is absent)."""
    if log is None or log.empty or "epoch" not in log:
        return [f"no training log ({where})"]
    planned = (meta.get("train") or {}).get("epochs")
    done = float(log["epoch"].max())
    if planned is not None and done < float(planned) - 1e-6:
        return [f"training stopped at epoch {done:g} of {planned} ({where})"]
    if abs(done - SETUP["epochs"]) > 1e-6:
        return [f"trained {done:g} epochs by the training logs (paper {SETUP['epochs']})"]
    return []


def asked_reasons(rec: Records, meta: dict[str, Any], where: str) -> list[str]:
    """What the config asked vs what the model recorded (only the keys both name)."""
    out = []
    for section in ("model", "train"):
        asked, got = rec.art.cfg.get(section) or {}, meta.get(section) or {}
        for k in sorted(set(asked) & set(got)):
            if k in ("device", "threads", "compile", "precision") or asked[k] == got[k]:
                continue
            out.append(f"asked {section}.{k} {_v(asked[k])}, {where} records {_v(got[k])}")
    return out


def tokens_seen(log: Any) -> float:
    if log is None or "tokens" not in log or log["tokens"].dropna().empty:
        return math.nan
    return float(log["tokens"].dropna().iat[-1])


def twin_reasons(metas: dict[str, dict], logs: dict[str, Any], seed: int) -> list[str]:
    """The twins of one seed trained alike: same model but the linear type, same training, tokens."""
    if not {"ternary", "fp32"} <= set(metas):
        return []
    t, f = metas["ternary"], metas["fp32"]
    diffs = []
    for section in ("model", "train"):
        a, b = t.get(section) or {}, f.get(section) or {}
        for k in sorted(set(a) | set(b)):
            if k not in TWIN_FREE and a.get(k) != b.get(k) and k not in ("device", "threads"):
                diffs.append(f"{k} {_v(a.get(k))} vs {_v(b.get(k))}")
    for k in ("seed", "corpus", "tokenizer"):
        if t.get(k) != f.get(k):
            diffs.append(f"{k} {_v(t.get(k))} vs {_v(f.get(k))}")
    nt, nf = tokens_seen(logs.get("ternary")), tokens_seen(logs.get("fp32"))
    if nt != nf and not (math.isnan(nt) and math.isnan(nf)):
        diffs.append(f"tokens seen {_n(nt)} vs {_n(nf)}")
    return [f"twins of seed {seed} not trained alike (ternary vs FP32): {', '.join(diffs)}"] if diffs else []


def _n(x: float) -> str:
    return "not logged" if math.isnan(x) else f"{x:,.0f}"


def run_reasons(
    rec: Records, variants: Sequence[str], trail: Trail, corpus: str, seeds: Sequence[int]
) -> list[str]:
    """Every check on the pretraining runs of ``variants`` x ``seeds`` of ``corpus``."""
    art = rec.art
    reasons: list[str] = []
    seeds_seen: dict[int, int] = {}
    absent: list[str] = []
    for s in seeds:
        metas, logs = {}, {}
        for v in variants:
            meta = rec.model(corpus, v, s, trail)
            where = rec.rel(art.model_file(corpus, v, s, "config.json"))
            log = rec.log(corpus, v, s, trail)
            if meta is None:
                absent.append(rec.rel(art.model_dir(corpus, v, s)))
                reasons += log_reasons(log, {}, rec.rel(art.metrics_csv(corpus, v, s)))
                continue
            metas[v], logs[v] = meta, log
            reasons += arch_reasons(meta, "config.json") + quant_reasons(meta, v, where)
            reasons += train_reasons(meta, "config.json") + asked_reasons(rec, meta, "config.json")
            reasons += log_reasons(log, meta, rec.rel(art.metrics_csv(corpus, v, s)))
            if meta.get("seed") is not None and int(meta["seed"]) != s:
                reasons.append(f"{where} records seed {meta['seed']}, not {s}")
            if v == variants[0] and meta.get("seed") is not None:
                seeds_seen[int(meta["seed"])] = seeds_seen.get(int(meta["seed"]), 0) + 1
        reasons += twin_reasons(metas, logs, s)
    if absent:  # architecture, quantization and training settings are then unknown
        reasons.insert(0, f"no model record (config.json absent) in {_list(absent)}")
    dup = [s for s, n in seeds_seen.items() if n > 1]
    if dup:
        reasons.append(f"seeds not distinct: seed {', '.join(map(str, dup))} recorded by several runs")
    return dedup(reasons)


def _list(items: list[str], k: int = 2) -> str:
    more = f" and {len(items) - k} more" if len(items) > k else ""
    return ", ".join(items[:k]) + more


def tokenizer_reasons(rec: Records, trail: Trail) -> list[str]:
    path = rec.art.tokenizer_json()
    tok = rec.json(path)
    if tok is not None:  # the tokenizers library's own format: its provenance is the token metas'
        trail.add(path, traced=False)
    if tok is None:
        return [f"no tokenizer record: {rec.rel(path)} absent"]
    vocab = (tok.get("model") or {}).get("vocab") or {}
    added = {t.get("id") for t in tok.get("added_tokens") or []} - set(vocab.values())
    n = len(vocab) + len(added)
    out = []
    if n != SETUP["vocab_size"]:
        out.append(
            f"tokenizer: {n} entries in tokenizer.json (paper {SETUP['tokenizer']}, {SETUP['vocab_size']})"
        )
    if "[unused0]" not in vocab:  # bert-base-uncased's vocabulary has 994 [unusedN] entries
        out.append(f"tokenizer: not {SETUP['tokenizer']}'s vocabulary (tokenizer.json has no [unused0])")
    return out


def data_reasons(rec: Records, corpus: str, trail: Trail) -> list[str]:
    """Training and validation data as prepared (manifest) vs the paper's 60k / first 2,000 stories."""
    art = rec.art
    man = rec.manifest(corpus, trail)
    where = rec.rel(art.manifest(corpus))
    if man is None:
        return [f"no data record: {where} absent"]
    if man.get("source") == "synthetic" or corpus == "synthetic":
        return [f"synthetic offline corpus ({corpus}), not the paper's data"]
    out = []
    if corpus == art.main and corpus != SETUP["corpus"]:
        out.append(f"main corpus {corpus} (paper {SETUP['corpus']})")
    splits = man.get("splits") or {}
    n_train = (splits.get("train") or {}).get("n_docs")
    if corpus in ("tinystories", "writingprompts") and n_train != SETUP["train_docs"]:
        out.append(f"{_v(n_train)} {corpus} training documents in {where} (paper {SETUP['train_docs']:,})")
    n_val = (splits.get("val") or {}).get("n_docs")
    if corpus == art.main and n_val != SETUP["val_docs"]:  # PPL is an average over this sample
        out.append(f"validation set {_v(n_val)} documents in {where} (paper first {SETUP['val_docs']:,})")
    return out


def eval_reasons(rec: Records, variant: str, seed: int, trail: Trail) -> list[str]:
    """The evaluation belongs to the model it names, used the model's objective and the whole
    validation split."""
    art = rec.art
    ev = rec.eval(art.main, variant, seed, trail)
    where = rec.rel(art.eval_json(art.main, variant, seed))
    if ev is None:
        return []  # the caller names a missing evaluation as a missing seed
    out = []
    want = rec.rel(art.model_dir(art.main, variant, seed))
    named = str(ev.get("model_dir") or "")
    if tuple(named.replace("\\", "/").split("/")[-3:]) != tuple(want.split("/")[-3:]):
        out.append(f"{where} evaluates {named or 'an unnamed model'}, not {want}")
    meta = rec.model(art.main, variant, seed) or {}
    if ev.get("model") is not None and meta.get("model") is not None and ev["model"] != meta["model"]:
        out.append(f"{where} records a model other than {want}/config.json's")
    ls, trained = ev.get("label_smoothing"), (meta.get("train") or {}).get("label_smoothing")
    if ls != SETUP["label_smoothing"] or (trained is not None and ls != trained):
        out.append(
            f"{where}: label smoothing {_v(ls)} (trained with {_v(trained)}, paper {SETUP['label_smoothing']})"
        )
    if ev.get("val_batches"):
        out.append(f"{where}: validation subsample of {ev['val_batches']} batches")
    val = rec.token_meta(art.main, "val", trail)
    seq = (meta.get("model") or {}).get("seq_len") or ev.get("seq_len")
    n_val = (val or {}).get("n_tokens")
    if n_val and seq and ev.get("n_val_tokens") is not None:
        full = (int(n_val) - 1) // int(seq) * int(seq)
        if int(ev["n_val_tokens"]) < full:
            out.append(f"{where}: validation on {int(ev['n_val_tokens']):,} of {full:,} tokens")
    return out


def pretrain_context(
    rec: Records, variants: Sequence[str] = ("ternary", "fp32"), corpus: str | None = None
) -> tuple[list[str], Trail]:
    """Reasons and evidence shared by every claim on the pretraining runs of ``variants``."""
    corpus = corpus or rec.art.main
    trail = rec.trail()
    seeds = rec.art.seeds
    if corpus != rec.art.main:
        seeds = list(dict.fromkeys(s for _, _, s in rec.art.convergence_runs(corpus)))
    reasons = run_reasons(rec, variants, trail, corpus, seeds) + tokenizer_reasons(rec, trail)
    reasons += data_reasons(rec, corpus, trail)
    if corpus == rec.art.main:
        for v in variants:
            for s in rec.art.seeds:
                reasons += eval_reasons(rec, v, s, trail)
    return dedup(reasons), trail
