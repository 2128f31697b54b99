"""The model card (README.md) of an HF export, generated from the run's artifacts only.

Every number comes from a file: the export summary (``export.json``), the source model's
``config.json`` and ``metrics.csv``, the ``evaluate`` JSONs and ``finetune`` metrics of all seeds
of the variant. Nothing is typed in; a missing input leaves its row out and says so.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ternarylm import __version__
from ternarylm.io import read_json, write_text
from ternarylm.provenance import git_commit

# corpus name in our config -> HF dataset id for the card's metadata
HF_DATASETS = {"tinystories": "roneneldan/TinyStories", "shakespeare": "tiny_shakespeare"}
CORPUS_NOTES = {
    "tinystories": "simple children's-story English",
    "synthetic": "a small generated corpus for pipeline tests; the model is not useful for text",
}
PAPER = "TernaryLM (Nargund & Shukla, arXiv 2602.07374)"


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    vals = list(values)
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def fmt(values: Sequence[float], digits: int = 2) -> str:
    m, s, n = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f} (n={n})" if n > 1 else f"{m:.{digits}f} (n=1)"


def train_tokens(source: Path) -> int | None:
    """Tokens seen in pretraining: the last ``tokens`` of the run's metrics.csv."""
    path = source / "metrics.csv"
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return int(float(rows[-1]["tokens"])) if rows and rows[-1].get("tokens") else None


def finetune_scores(paths: Sequence[Path]) -> dict[str, Any] | None:
    """MRPC F1 (test split if there is one, else dev) over seeds, beside the majority baseline."""
    runs = [read_json(p) for p in paths]
    if not runs:
        return None
    split = "test" if all(r.get("test") for r in runs) else "dev"
    return {
        "task": runs[0]["task"],
        "split": split,
        "synthetic": runs[0].get("data_source") == "synthetic",  # the smoke preset's made-up pairs
        "f1": [r[split]["f1"] for r in runs],
        "majority_f1": [r["majority"][split]["f1"] for r in runs],
        "accuracy": [r[split]["accuracy"] for r in runs],
    }


def card_header(name: str, corpus: str, ppl: dict | None, ft: dict | None, variant: str) -> dict:
    """YAML front matter: license, tags, datasets and the model-index results."""
    dataset = HF_DATASETS.get(corpus, corpus)
    results = []
    if ppl:
        results.append(
            {
                "task": {"type": "text-generation", "name": "Language modelling"},
                "dataset": {"type": dataset, "name": corpus, "split": "validation"},
                "metrics": [
                    {"type": "perplexity", "name": "validation perplexity (plain CE)", "value": ppl["plain"]},
                    {
                        "type": "perplexity",
                        "name": f"validation perplexity (label-smoothed CE, {ppl['ls']})",
                        "value": ppl["smoothed"],
                    },
                ],
            }
        )
    if ft:
        results.append(
            {
                "task": {"type": "text-classification", "name": f"{ft['task'].upper()} (fine-tuned)"},
                "dataset": {
                    "type": "synthetic" if ft["synthetic"] else "nyu-mll/glue",
                    "name": f"{'synthetic' if ft['synthetic'] else 'GLUE'} {ft['task'].upper()}",
                    "split": ft["split"],
                },
                "metrics": [
                    {"type": "f1", "name": "F1", "value": mean_std(ft["f1"])[0]},
                    {
                        "type": "f1",
                        "name": "F1 of the majority-class baseline",
                        "value": ft["majority_f1"][0],
                    },
                ],
            }
        )
    tags = ["ternarylm", "llama", "text-generation"] + (
        ["ternary", "bitnet", "1.58-bit"] if variant == "ternary" else []
    )
    header = {
        "license": "mit",
        "language": ["en"],
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "datasets": [dataset],
        "tags": tags,
    }
    if results:
        header["model-index"] = [{"name": name, "results": results}]
    return header


def what_section(summary: dict, variant: str) -> list[str]:
    """Which form this export is, and the activation-quantization caveat with its measured cost."""
    if variant != "ternary":
        return [
            "This is the **FP32 twin**: the same architecture, initialisation and data order as the ternary",
            "model, with full-precision linear layers. It loads as a plain `LlamaForCausalLM`.",
        ]
    lines = [
        "This is the **ternary twin**: every attention and MLP projection has weights in {-1, 0, +1}",
        "times one full-precision scale per tensor (alpha = mean |W|, BitNet b1.58 absmean); in training",
        "the inputs of those projections are quantized to 8 bits per token (absmax). The embedding, the",
        "RMSNorm weights and the untied LM head stay full precision.",
        "",
    ]
    if summary["hf_quant"] == "bitnet":
        lines += [
            "This export uses transformers' built-in `bitnet` quantization (`autobitlinear`, offline): packed",
            "2-bit weights plus `weight_scale`, and the same 8-bit per-token activation quantization as",
            "training, so it reproduces the trained W1.58A8 forward. Loading needs `accelerate`.",
        ]
    else:
        lines += [
            f"This export stores the ternary weights **unpacked** (alpha · codes, {summary['dtype']}) as a plain",
            "`LlamaForCausalLM`, so any Llama-capable library runs it. It does **not** quantize activations,",
            "so its outputs differ slightly from the trained forward.",
        ]
    if "val_ppl_unpacked_no_act_quant" in summary:
        lines += [
            "",
            f"Measured on {summary['val_tokens']:,} validation tokens: perplexity "
            f"{summary['val_ppl_trained_forward']:.3f} with the trained forward (8-bit activations) vs "
            f"{summary['val_ppl_unpacked_no_act_quant']:.3f} for the unpacked form without activation "
            f"quantization (ratio {summary['ppl_ratio_unpacked_vs_trained']:.4f}).",
        ]
    return lines


def results_section(evals: Sequence[dict], ft: dict | None) -> list[str]:
    lines = ["| metric | value (mean ± std over seeds) |", "|---|---|"]
    if evals:
        ls = evals[0]["label_smoothing"]
        lines.append(f"| validation perplexity, plain CE | {fmt([e['val_ppl'] for e in evals])} |")
        lines.append(
            f"| validation perplexity, label-smoothed CE ({ls}; the paper's objective) | "
            f"{fmt([e['val_ppl_smoothed'] for e in evals])} |"
        )
        lines.append(f"| val / train loss ratio | {fmt([e['loss_ratio'] for e in evals], 3)} |")
    if ft:
        name = ft["task"].upper()
        lines.append(f"| {name} F1 ({ft['split']}) | {fmt(ft['f1'])} |")
        lines.append(f"| {name} accuracy ({ft['split']}) | {fmt(ft['accuracy'])} |")
        lines.append(f"| {name} F1, majority-class baseline ({ft['split']}) | {fmt(ft['majority_f1'])} |")
    if len(lines) == 2:
        return ["No evaluation artifacts were given to the export, so no results are listed."]
    return lines


def usage_section(out_name: str, gguf: str | None, summary: dict) -> list[str]:
    extra = " (needs `pip install accelerate`)" if summary["hf_quant"] == "bitnet" else ""
    lines = [
        f"transformers{extra}:",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f'tok = AutoTokenizer.from_pretrained("{out_name}")',
        f'model = AutoModelForCausalLM.from_pretrained("{out_name}")',
        "# documents follow a [SEP] (bos) in training: start prompts with it",
        'ids = tok(tok.bos_token + " once upon a time", return_tensors="pt")',
        "out = model.generate(**ids, max_new_tokens=40, do_sample=False)",
        "print(tok.decode(out[0], skip_special_tokens=True))",
        "```",
    ]
    if gguf:
        lines += [
            "",
            "llama.cpp (the GGUF file beside this folder):",
            "",
            "```sh",
            f'llama-cli -m {gguf} -p "once upon a time" -n 40 --temp 0',
            "```",
        ]
    return lines


def provenance_section(summary: dict, command: str | None) -> list[str]:
    return [
        f"- ternarylm-repro {__version__}, git commit `{git_commit()}`",
        f"- source model: `{summary['source']}`",
        f"- produced by: `{command or 'ternarylm export --format hf'}`",
    ]


CITATION = """```bibtex
@article{ternarylm,
  title   = {TernaryLM: Memory-Efficient Language Modeling via Native 1.5-Bit Quantization with Adaptive Layer-wise Scaling},
  author  = {Nargund and Shukla},
  journal = {arXiv preprint arXiv:2602.07374},
  year    = {2026}
}
@software{ternarylm_repro,
  title   = {ternarylm-repro: a reproduction pipeline for TernaryLM},
  version = {VERSION}
}
```"""


def model_card(
    out: str | Path,
    evals: Sequence[str | Path] = (),
    finetunes: Sequence[str | Path] = (),
    gguf: str | None = None,
    command: str | None = None,
    out_name: str | None = None,
) -> str:
    """Markdown of the card for the export in ``out`` (reads out/export.json and the source model);
    ``out_name``: the folder users will load (``out`` may be the temporary it is written in)."""
    out = Path(out)
    summary = read_json(out / "export.json")
    source = Path(summary["source"])
    src_cfg = read_json(source / "config.json")
    variant, corpus = summary["variant"], src_cfg.get("corpus", "unknown")
    mcfg = src_cfg["model"]
    ev = [read_json(p) for p in evals]
    ft = finetune_scores([Path(p) for p in finetunes])
    ppl = None
    if ev:
        ppl = {
            "plain": mean_std([e["val_ppl"] for e in ev])[0],
            "smoothed": mean_std([e["val_ppl_smoothed"] for e in ev])[0],
            "ls": ev[0]["label_smoothing"],
        }
    name = f"ternarylm-{variant}"
    tokens = train_tokens(source)
    seeds = sorted(Path(p).stem.removeprefix("seed") for p in evals)  # evaluate writes seed{s}.json
    body = [
        f"# {name}",
        "",
        f"A {summary['params'] / 1e6:.1f}M-parameter decoder from a reproduction of {PAPER}.",
        "",
    ]
    body += what_section(summary, variant)
    body += ["", "## Training", ""]
    body += [
        f"- data: {corpus} (train split), uncased WordPiece vocabulary of {mcfg['vocab_size']:,} tokens",
        f"- tokens seen: {tokens:,}" if tokens else "- tokens seen: unknown (no metrics.csv)",
        f"- architecture: d {mcfg['d_model']}, {mcfg['n_layers']} layers, {mcfg['n_heads']} heads, "
        f"SwiGLU {mcfg['ffn_hidden']}, RoPE, RMSNorm, context {mcfg['seq_len']}",
        f"- this export: seed {src_cfg.get('seed', '?')}; results below over seeds {', '.join(map(str, seeds)) or '-'}",
    ]
    body += ["", "## Results", ""] + results_section(ev, ft)
    body += ["", "## Limitations", ""]
    body += [
        f"- {mcfg['seq_len']}-token context (positions beyond it were never trained).",
        "- Uncased vocabulary: text is lower-cased and accents are stripped before tokenization.",
        f"- Trained on {corpus} only ({CORPUS_NOTES.get(corpus, 'one corpus')}); not for factual or general use.",
    ]
    body += ["", "## Use", ""] + usage_section(out_name or str(out), gguf, summary)
    body += ["", "## Provenance", ""] + provenance_section(summary, command)
    body += ["", "## Citation", "", CITATION.replace("VERSION", __version__)]
    header = yaml.safe_dump(card_header(name, corpus, ppl, ft, variant), sort_keys=False, allow_unicode=True)
    return f"---\n{header}---\n\n" + "\n".join(body) + "\n"


def write_model_card(out: str | Path, **kwargs: Any) -> Path:
    path = Path(out) / "README.md"
    write_text(path, model_card(out, **kwargs))
    return path
