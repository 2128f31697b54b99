"""The model card from an export's artifacts alone (no torch): metadata a hub parser accepts, the
data's licence, this checkpoint's numbers before the seed mean, the training record, the citation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ternarylm.modelcard import model_card

hub = pytest.importorskip("huggingface_hub", reason="huggingface_hub parses the card's metadata")


def fake_export(root: Path, corpus: str, quant: str = "none", synthetic_ft: bool = True) -> dict:
    """results/pretrain/{corpus}/ternary/seed3 with config + metrics + benchmark, an export, evals, a finetune."""
    src = root / "results" / "pretrain" / corpus / "ternary" / "seed3"
    src.mkdir(parents=True)
    train = {"lr": 0.001, "betas": [0.9, 0.98], "weight_decay": 0.01, "warmup_frac": 0.1, "grad_clip": 1.0}
    train |= {"label_smoothing": 0.1, "batch_size": 32, "epochs": 2, "max_steps": None}
    model = {
        "vocab_size": 6627,
        "d_model": 256,
        "n_layers": 4,
        "n_heads": 4,
        "ffn_hidden": 768,
        "seq_len": 128,
    }
    prov = {"device": "cpu", "threads": 2, "platform": "Linux-test"}
    cfg = {"model": model, "train": train, "seed": 3, "corpus": corpus, "provenance": prov}
    (src / "config.json").write_text(json.dumps(cfg))
    (src / "metrics.csv").write_text(
        "step,epoch,tokens,train_loss\n100,0.7,409600,5.7\n276,2.0,1130496,4.1\n"
    )
    bench = root / "results" / "benchmarks" / "pretrain"
    bench.mkdir(parents=True)
    (bench / f"{corpus}_ternary_seed3.tsv").write_text("s\th:m:s\n754.2\t0:12:34\n")
    out = root / "deploy" / quant
    out.mkdir(parents=True)
    summary = {"source": str(src), "variant": "ternary", "params": 6_803_200, "hf_quant": quant}
    summary |= {"dtype": "float32", "val_tokens": 4096, "val_ppl_trained_forward": 31.61}
    summary |= {"val_ppl_unpacked_no_act_quant": 32.47, "ppl_ratio_unpacked_vs_trained": 32.47 / 31.61}
    (out / "export.json").write_text(json.dumps(summary))
    evals = []
    for seed, ppl in ((3, 31.6205), (4, 31.84)):
        model_dir = root / "results" / "pretrain" / corpus / "ternary" / f"seed{seed}"
        p = root / f"evaluation-{seed}.json"  # a name without the seed: the label must come from the data
        p.write_text(json.dumps({"model_dir": str(model_dir), "label_smoothing": 0.1, "val_ppl": ppl})[:-1])
        p.write_text(p.read_text() + f', "val_ppl_smoothed": {ppl * 2}, "loss_ratio": 1.05}}')
        evals.append(p)
    ft = root / "ft.json"
    split = {"f1": 87.81, "accuracy": 80.0}
    ft.write_text(
        json.dumps(
            {
                "task": "mrpc",
                "dev": split,
                "test": split,
                "majority": {"dev": {"f1": 76.35}, "test": {"f1": 76.35}},
            }
            | {"data_source": "synthetic" if synthetic_ft else "local"}
        )
    )
    cmd = "snakemake deploy --cores all --configfile workflow/presets/smoke.yaml --config results_dir=results"
    return {"out": out, "evals": evals, "finetunes": [ft], "command": cmd}


def header(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


def test_card_metadata_parses_with_huggingface_hub(tmp_path):
    card = model_card(**fake_export(tmp_path, "tinystories", synthetic_ft=False))
    parsed = hub.ModelCard(card)
    assert parsed.data.license == "cdla-sharing-1.0"  # TinyStories' licence, not the code's MIT
    results = {(r.dataset_name, r.metric_name): r.metric_value for r in parsed.data.eval_results}
    assert results[("tinystories", "validation perplexity (plain CE), this checkpoint (seed 3)")] == 31.62
    assert results[("GLUE MRPC", "F1, mean over seeds")] == 87.81
    assert "MIT-licensed" in card and "CDLA-Sharing-1.0" in card


def test_card_tells_the_checkpoint_from_the_seed_mean(tmp_path):
    card = model_card(**fake_export(tmp_path, "tinystories"))
    assert "**this checkpoint** (seed 3): validation perplexity, plain CE | **31.62**" in card
    assert "mean ± std over seeds 3, 4: validation perplexity, plain CE | 31.73 ± 0.16 (n=2)" in card
    assert "evaluation-" not in card and "seed seed" not in card


def test_card_names_the_synthetic_task_and_the_missing_classifier(tmp_path):
    card = model_card(**fake_export(tmp_path, "synthetic"))
    assert header(card)["license"] == "mit"
    assert "synthetic MRPC-like pairs F1 (test)" in card and "GLUE MRPC" not in card
    assert "classifier head is **not included**" in card


def test_card_records_training_and_citation(tmp_path):
    ex = fake_export(tmp_path, "tinystories")
    card = model_card(**ex)
    for line in ("peak lr 0.001", "batch 32 sequences × 128 tokens, 2 epoch(s)", "steps: 276"):
        assert line in card
    assert "tokens seen: 1,130,496" in card and "wall time: 12.6 min" in card and "cpu, 2 threads" in card
    assert f"`{ex['command']}`" in card
    bib = card[card.index("```bibtex") :]
    assert "author  = {Nargund, Nisharg and Shukla, Priyesh}" in bib and "year    = {2026}" in bib
    assert "@software" in bib and "author  = {{ternarylm-repro contributors}}" in bib and "git commit" in bib


def test_each_form_card_shows_its_own_perplexity(tmp_path):
    unpacked = model_card(**fake_export(tmp_path / "a", "tinystories", "none"))
    bitnet = model_card(**fake_export(tmp_path / "b", "tinystories", "bitnet"))
    assert "**This form's perplexity**: 32.47" in unpacked
    assert "**This form's perplexity**: 31.61" in bitnet and "32.47" not in bitnet
