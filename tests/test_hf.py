"""Hugging Face export: logits, tokenizer, generation, model card and the lm-eval task.

Tiny twins (d 256) with a tokenizer learned from real TinyStories text (../shared/data; the
synthetic corpus when absent). The ternary twin is trained briefly so its predictions are peaked
like a real model's. transformers' bitnet kernels are wrapped in ``torch.compile``; the tests run
them eagerly (dynamo disabled: same arithmetic, minutes of CPU compile time saved).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import ROOT, SHARED_DATA

transformers = pytest.importorskip("transformers", reason="needs the [eval] extra (transformers)")

from ternarylm.cli import main as cli_main  # noqa: E402
from ternarylm.data import read_docs  # noqa: E402
from ternarylm.hf_export import export_hf, pack_bitnet, rope_permutation  # noqa: E402
from ternarylm.model import build_model, lm_loss, load_model, save_model  # noqa: E402
from ternarylm.modelcard import model_card  # noqa: E402
from ternarylm.quant import BitLinear  # noqa: E402
from ternarylm.tokenizer import SEP_ID, load_tokenizer, train_tokenizer  # noqa: E402

torch.set_num_threads(1)
# vocab 1000, not a multiple of 64: the model pads its head to 1024 rows, the export must not
TINY = dict(vocab_size=1000, d_model=256, n_layers=2, n_heads=4, ffn_hidden=512, seq_len=64, dropout=0.0)
# worktrees sit one level deeper than the main checkout
DATA = next((p for p in (SHARED_DATA, ROOT.parents[1] / "shared" / "data") if p.exists()), None)


def story_docs(n: int) -> list[str]:
    if DATA is None:
        from ternarylm.synthetic import synthetic_corpus

        return synthetic_corpus(n, seed=0)
    return read_docs(DATA / "tinystories" / "valid.txt")[:n]


def mrpc_sentences(n: int) -> list[str]:
    if DATA is None:
        from ternarylm.synthetic import synthetic_pairs

        return [a for a, _, _ in synthetic_pairs(n, seed=0)]
    lines = (DATA / "mrpc" / "dev.tsv").read_text(encoding="utf-8-sig").splitlines()[1 : n + 1]
    return [s for line in lines for s in line.split("\t")[3:5]]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf")


@pytest.fixture(scope="module")
def tokenizer_path(root) -> Path:
    path = root / "tokenizer.json"
    train_tokenizer(story_docs(300), vocab_size=TINY["vocab_size"]).save(str(path))
    return path


@pytest.fixture(scope="module")
def val_bin(root, tokenizer_path) -> Path:
    """A val token stream in the tokenize stage's format (docs each followed by [SEP])."""
    from ternarylm.encode import encode_docs

    ids = encode_docs(load_tokenizer(tokenizer_path), story_docs(60))
    path = root / "val.bin"
    ids.tofile(path)
    path.with_suffix(".json").write_text(json.dumps({"n_tokens": int(ids.shape[0])}))
    return path


@pytest.fixture(scope="module")
def twins(root, val_bin) -> dict[str, Path]:
    """Both twins trained 30 steps on the real-text stream (peaked, realistic logits)."""
    stream = torch.from_numpy(np.fromfile(val_bin, dtype=np.uint16).astype(np.int64))
    out = {}
    for variant in ("ternary", "fp32"):
        model = build_model({**TINY, "linear": variant}, seed=0)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(0)
        for _ in range(30):
            ix = torch.randint(0, len(stream) - 65, (8,), generator=gen)
            x = torch.stack([stream[i : i + 64] for i in ix])
            y = torch.stack([stream[i + 1 : i + 65] for i in ix])
            loss = lm_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        save_model(model, root / variant, extra={"corpus": "tinystories", "seed": 0, "variant": variant})
        out[variant] = root / variant
    return out


@pytest.fixture(scope="module")
def exports(root, twins, tokenizer_path, val_bin) -> dict[str, Path]:
    out = {}
    for name, variant, quant in (
        ("fp32", "fp32", "none"),
        ("none", "ternary", "none"),
        ("bitnet", "ternary", "bitnet"),
    ):
        out[name] = root / f"hf-{name}"
        export_hf(twins[variant], tokenizer_path, out[name], quant, val_tokens=val_bin, val_windows=0)
    return out


@pytest.fixture(scope="module")
def real_ids(tokenizer_path) -> torch.Tensor:
    tok = load_tokenizer(tokenizer_path)
    ids = [SEP_ID]
    for doc in story_docs(80)[60:]:  # stories the twins were not trained on
        ids += [*tok.encode(doc).ids, SEP_ID]
    return torch.tensor(ids[: 2 * 64]).reshape(2, 64)


def hf_model(path: Path):
    with torch._dynamo.config.patch(disable=True):
        return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def hf_logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), torch._dynamo.config.patch(disable=True):
        return model(ids).logits


def our_logits(model_dir: Path, ids: torch.Tensor, act_quant: bool = True) -> torch.Tensor:
    model = load_model(model_dir)
    for m in model.modules():
        if isinstance(m, BitLinear) and not act_quant:
            m.act_bits = 0
    with torch.no_grad():
        return model(ids)


def test_rope_permutation_maps_pairs_to_halves():
    perm = rope_permutation(n_heads=2, head_dim=6)
    assert perm.tolist() == [0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11]


def test_fp32_export_logits_equal_ours(exports, twins, real_ids):
    got = hf_logits(hf_model(exports["fp32"]), real_ids)
    assert torch.allclose(got, our_logits(twins["fp32"], real_ids), atol=1e-4, rtol=0)


def test_ternary_unpacked_equals_ours_without_activation_quant(exports, twins, real_ids):
    got = hf_logits(hf_model(exports["none"]), real_ids)
    ref = our_logits(twins["ternary"], real_ids, act_quant=False)
    assert torch.allclose(got, ref, atol=1e-4, rtol=0)
    # and it is not the trained (8-bit activation) forward: the summary's PPL gap is real
    assert not torch.allclose(got, our_logits(twins["ternary"], real_ids), atol=1e-4, rtol=0)


def test_without_rope_permutation_logits_differ(monkeypatch, root, twins, tokenizer_path, real_ids):
    """The q/k permutation is needed: exporting without it changes the logits."""
    import ternarylm.hf_export as hx

    monkeypatch.setattr(hx, "rope_permutation", lambda h, d: torch.arange(h * d))
    export_hf(twins["fp32"], tokenizer_path, root / "hf-noperm")
    got = hf_logits(hf_model(root / "hf-noperm"), real_ids)
    assert (got - our_logits(twins["fp32"], real_ids)).abs().max() > 1e-3


def test_bitnet_export_matches_trained_forward(exports, twins, real_ids):
    """W1.58A8 through transformers' bitnet quantizer (AutoBitLinear, offline). The activation rule is
    ours, but the layers compute linear(x_q, codes) * alpha where we compute linear(x_q, alpha * codes):
    ~1e-7 float differences that flip an occasional round(x * 127 / absmax) from one 8-bit step to the
    next in a later layer. Measured on this twin: max |diff| 0.028 on logits up to |8.3|, mean 1e-3,
    top-1 identical. Tolerance: max 0.1 (the GGUF tests' bound), mean 5e-3, top-1 >= 99 %."""
    pytest.importorskip("accelerate", reason="transformers' bitnet loader needs accelerate ([eval] extra)")
    model = hf_model(exports["bitnet"])
    assert (
        json.loads((exports["bitnet"] / "config.json").read_text())["quantization_config"]["quant_method"]
        == "bitnet"
    )
    assert type(model.model.layers[0].mlp.up_proj).__name__ == "AutoBitLinear"
    assert type(model.lm_head).__name__ == "Linear"
    got, ref = hf_logits(model, real_ids), our_logits(twins["ternary"], real_ids)
    diff = (got - ref).abs()
    assert diff.max() < 0.1 and diff.mean() < 5e-3
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.99
    # the activation quantization is really there: the unpacked form is further away
    assert (hf_logits(hf_model(exports["none"]), real_ids) - ref).abs().mean() > diff.mean()


def test_pack_bitnet_is_transformers_order():
    from transformers.integrations.bitnet import unpack_weights

    codes = torch.randint(-1, 2, (12, 7), dtype=torch.int8, generator=torch.Generator().manual_seed(0))
    with torch._dynamo.config.patch(disable=True):
        back = unpack_weights(pack_bitnet(codes), dtype=torch.float32)
    assert torch.equal(back, codes.float())


def test_export_summary_reports_both_perplexities(exports, twins, val_bin):
    s = json.loads((exports["none"] / "export.json").read_text())
    stream = np.fromfile(val_bin, dtype=np.uint16).astype(np.int64)
    n = (len(stream) - 1) // 64
    x = torch.from_numpy(np.stack([stream[i * 64 : i * 64 + 65] for i in range(n)]))
    ce = lm_loss(our_logits(twins["ternary"], x[:, :-1]), x[:, 1:]).item()
    assert s["val_tokens"] == n * 64
    assert math.isclose(s["val_ppl_trained_forward"], math.exp(ce), rel_tol=1e-5)
    assert s["val_ppl_unpacked_no_act_quant"] != s["val_ppl_trained_forward"]
    assert "val_ppl_unpacked_no_act_quant" not in json.loads((exports["fp32"] / "export.json").read_text())


def test_tokenizer_ids_equal_ours(exports, tokenizer_path):
    hf_tok = transformers.AutoTokenizer.from_pretrained(exports["none"])
    ours = load_tokenizer(tokenizer_path)
    texts = story_docs(5) + mrpc_sentences(10)
    for text in texts:
        assert hf_tok(text).input_ids == ours.encode(text).ids
    assert hf_tok.bos_token_id == hf_tok.eos_token_id == SEP_ID
    assert hf_tok(hf_tok.bos_token + " " + texts[0]).input_ids == [SEP_ID, *ours.encode(texts[0]).ids]


@pytest.mark.parametrize("name", ["fp32", "none"])
def test_generate_matches_ternarylm_generate(name, exports, twins, tokenizer_path, root):
    variant = "fp32" if name == "fp32" else "ternary"
    src = root / f"{variant}-noact"
    model = load_model(twins[variant])
    for m in model.modules():
        if isinstance(m, BitLinear):
            m.act_bits = 0  # what the unpacked export computes
    save_model(model, src)
    out = root / f"gen-{name}.json"
    args = ["generate", "--backend", "torch", "--model", str(src), "--tokenizer", str(tokenizer_path)]
    assert cli_main([*args, "--prompt", "Once upon a time", "--max-new-tokens", "20", "--out", str(out)]) == 0
    ours = json.loads(out.read_text())["samples"][0]["ids"]

    tok = transformers.AutoTokenizer.from_pretrained(exports[name])
    ids = tok(tok.bos_token + " Once upon a time", return_tensors="pt")
    with torch.no_grad():
        gen = hf_model(exports[name]).generate(**ids, max_new_tokens=20, do_sample=False)
    assert gen[0, ids.input_ids.shape[1] :].tolist() == ours


def test_bitnet_on_fp32_model_is_a_user_error(twins, tokenizer_path, root, capsys):
    args = ["export", "--format", "hf", "--hf-quant", "bitnet", "--model", str(twins["fp32"])]
    rc = cli_main([*args, "--tokenizer", str(tokenizer_path), "--out", str(root / "bad")])
    assert rc == 2
    assert "needs a ternary model" in capsys.readouterr().err


def test_model_card_numbers_come_from_artifacts(exports, root):
    summary = json.loads((exports["none"] / "export.json").read_text())
    mine = json.loads((Path(summary["source"]) / "config.json").read_text())["seed"]
    evals = []
    for seed, ppl in ((mine, 10.0), (mine + 1, 12.0)):
        p = root / f"eval_{seed}.json"
        # the seed comes from the evaluated model's folder (the data), not from this file's name
        model_dir = root / "models" / f"seed{seed}"
        p.write_text(
            json.dumps(
                {
                    "label_smoothing": 0.1,
                    "val_ppl": ppl,
                    "val_ppl_smoothed": ppl + 5,
                    "loss_ratio": 1.01,
                    "model_dir": str(model_dir),
                }
            )
        )
        evals.append(p)
    ft = root / "ft.json"
    ft.write_text(
        json.dumps(
            {
                "task": "mrpc",
                "dev": {"f1": 80.0, "accuracy": 70.0},
                "test": {"f1": 81.5, "accuracy": 71.0},
                "majority": {"dev": {"f1": 79.0}, "test": {"f1": 79.9}},
            }
        )
    )
    card = model_card(exports["none"], evals=evals, finetunes=[ft], gguf="ternary.gguf")
    header = yaml.safe_load(card.split("---\n")[1])
    lm, cls = header["model-index"][0]["results"]
    # the model-index gives this checkpoint's perplexity; the body the seed mean with n beside it
    assert [m["value"] for m in lm["metrics"]] == [10.0, 15.0]
    assert [m["value"] for m in cls["metrics"]] == [81.5, 79.9] and cls["dataset"]["split"] == "test"
    assert f"over seeds {mine}, {mine + 1}" in card and "11.00 ± 1.41 (n=2)" in card
    assert f"seed {mine}): validation perplexity, plain CE | **10.00**" in card
    assert f"{summary['val_ppl_unpacked_no_act_quant']:.2f}" in card
    assert "ternary.gguf" in card and "unpacked" in card


def test_lm_eval_task_reproduces_rolling_perplexity(exports, twins, root, tokenizer_path, val_bin):
    """lm-eval's shipped task (stream mode) = our model on lm-eval's windows over [SEP] + the val stream."""
    pytest.importorskip("lm_eval", reason="needs the [eval] extra (lm-eval)")
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    from ternarylm.data import write_docs
    from ternarylm.lm_eval_tasks import TASKS_DIR

    text = root / "val.txt"
    write_docs(text, story_docs(60))
    # a TaskManager of our own gets no --model_args merged in: pass `pretrained` for the token counts
    meta = {"text": str(text), "stream": True, "pretrained": str(exports["fp32"])}
    with torch._dynamo.config.patch(disable=True):
        res = simple_evaluate(
            model="hf",
            model_args=f"pretrained={exports['fp32']},dtype=float32",
            tasks=["tinystories_ppl"],
            task_manager=TaskManager(include_path=str(TASKS_DIR), metadata=meta),
            batch_size=8,
            device="cpu",
        )
    got = res["results"]["tinystories_ppl"]["token_perplexity,none"]

    stream = np.fromfile(val_bin, dtype=np.uint16).astype(np.int64).tolist()
    model, ll = load_model(twins["fp32"]), 0.0
    for ctx, cont in map(make_disjoint_window, get_rolling_token_windows(stream, SEP_ID, 64, 1)):
        with torch.no_grad():
            logp = model(torch.tensor([(ctx + cont)[-65:][:-1]]))[0].log_softmax(-1)[-len(cont) :]
        ll += logp.gather(1, torch.tensor(cont)[:, None]).sum().item()
    assert math.isclose(got, math.exp(-ll / len(stream)), rel_tol=1e-4)
