"""Deployment: packed 2-bit format, GGUF export for llama.cpp, generation, benchmark CSV.

Tiny twins (d 256 so every input dim is a multiple of llama.cpp's 256-block) with a WordPiece
tokenizer learned here from a few sentences. The GGUF logit test briefly trains the ternary
twin so its predictions are peaked like a real model's (random weights give near-ties).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ternarylm.export import export_gguf, export_packed, tq1_0_blocks, tq2_0_blocks, wpm_vocab
from ternarylm.generate import generate_torch
from ternarylm.io import UserError
from ternarylm.model import build_model, lm_loss, load_model, save_model
from ternarylm.packed import (
    MODES,
    PackedTernaryLinear,
    load_packed,
    pack_codes,
    pack_model,
    save_packed,
    unpack_codes,
)
from ternarylm.quant import BitLinear, ternary_codes
from ternarylm.tokenizer import SEP_ID, train_tokenizer

torch.set_num_threads(1)

SENTENCES = [
    "Once upon a time, there was a little girl named Lily.",
    "She loved to play outside in the sunshine with her dog, Max.",
    "One day, Lily found a shiny red ball under a big green tree.",
    '"Can I play with it?" asked Tom. Lily said, "Yes, let\'s share!"',
    "They played all day and had 3 apples and 12 cookies for lunch.",
    "The bird sang a happy song. The cat was sleepy and went to bed.",
    "Mom smiled and said: you are very kind, my little ones.",
    "At the end of the day, everyone was happy and tired.",
]
REAL_ISH = [
    "Once upon a time, a little dog named Max found a red ball!",
    "Lily's mom said, \"Don't play in the rain.\" She was sad... but then she smiled.",
    "They had 42 cookies (and 7 apples) at the party; it was fun.",
    "THE BIG TREE WAS GREEN & TALL - the bird loved it?",
]
TINY = dict(vocab_size=512, d_model=256, n_layers=2, n_heads=4, ffn_hidden=512, seq_len=64, dropout=0.0)


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory) -> Path:
    tok = train_tokenizer(SENTENCES * 20, vocab_size=300)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def token_stream(tokenizer_path) -> torch.Tensor:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    ids: list[int] = []
    for s in SENTENCES * 8:
        ids += [SEP_ID, *tok.encode(s).ids]
    return torch.tensor(ids)


@pytest.fixture(scope="module")
def twins(tmp_path_factory, token_stream) -> dict[str, Path]:
    """Ternary twin trained for 40 steps; fp32 twin with random weights."""
    root = tmp_path_factory.mktemp("twins")
    model = build_model({**TINY, "linear": "ternary"}, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        ix = torch.randint(0, len(token_stream) - 33, (8,), generator=gen)
        x = torch.stack([token_stream[i : i + 32] for i in ix])
        y = torch.stack([token_stream[i + 1 : i + 33] for i in ix])
        loss = lm_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_model(model, root / "ternary")
    save_model(build_model({**TINY, "linear": "fp32"}, seed=0), root / "fp32")
    return {"ternary": root / "ternary", "fp32": root / "fp32"}


# --- packed format ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 4, 7, 256, 770])
def test_pack_unpack_roundtrip(n):
    codes = torch.randint(-1, 2, (5, n), dtype=torch.int8, generator=torch.Generator().manual_seed(n))
    packed = pack_codes(codes)
    assert packed.dtype == torch.uint8 and packed.shape == (5, (n + 3) // 4)
    assert torch.equal(unpack_codes(packed, n), codes)


def test_pack_layout_is_documented_order():
    codes = torch.tensor([[-1, 0, 1, 1, 0]], dtype=torch.int8)
    # byte 0 = (0) | (1 << 2) | (2 << 4) | (2 << 6); byte 1 = 1 (code 0) + padding codes 0 (=1 each)
    assert pack_codes(codes).tolist() == [[0 | 1 << 2 | 2 << 4 | 2 << 6, 1 | 1 << 2 | 1 << 4 | 1 << 6]]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("act_bits", [8, 0])
def test_packed_linear_matches_bitlinear(mode, act_bits):
    torch.manual_seed(0)
    ref = BitLinear(256, 384, act_bits=act_bits)
    packed = PackedTernaryLinear.from_bitlinear(ref, mode)
    x = torch.randn(2, 5, 256) * 3
    with torch.no_grad():
        expected = ref(x)
        got = packed(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    codes, _ = ternary_codes(ref.weight)
    assert torch.equal(packed.codes(), codes)
    assert not any(p.is_floating_point() and p.numel() > 1 for p in packed.buffers())  # no dense weight kept


def test_packed_model_file_roundtrip(twins, tmp_path):
    qat = load_model(twins["ternary"])
    idx = torch.randint(5, 300, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = qat(idx)
    path = tmp_path / "packed.safetensors"
    export_packed(twins["ternary"], path)
    for mode in MODES:
        model = load_packed(path, mode=mode)
        assert sum(isinstance(m, PackedTernaryLinear) for m in model.modules()) == 2 * 7
        assert not any(isinstance(m, BitLinear) for m in model.modules())
        assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
        with torch.no_grad():
            got = model(idx)
        if mode == "unpack":  # same float ops as BitLinear
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        else:  # exact integer sums round differently; 8-bit ties in later layers may flip
            assert (got - expected).abs().max() < 0.15
            assert (got.argmax(-1) == expected.argmax(-1)).float().mean() >= 0.97
    # fp16 storage of embedding/head/norms: smaller file, same argmax
    half = tmp_path / "packed16.safetensors"
    save_packed(qat, half, fp16=True)
    float_bytes = sum(
        p.numel() * 4
        for n, p in qat.named_parameters()
        if not n.endswith(
            ("q.weight", "k.weight", "v.weight", "o.weight", "gate.weight", "up.weight", "down.weight")
        )
    )
    assert path.stat().st_size - half.stat().st_size == pytest.approx(float_bytes / 2, rel=0.01)
    with torch.no_grad():
        assert torch.equal(load_packed(half)(idx).argmax(-1), expected.argmax(-1))
    # the 2-bit codes are 16x smaller than the fp32 latent weights they replace
    ternary_params = sum(m.weight.numel() for m in qat.modules() if isinstance(m, BitLinear))
    packed_bytes = sum(m.packed.numel() for m in model.modules() if isinstance(m, PackedTernaryLinear))
    assert packed_bytes == ternary_params // 4


def test_export_packed_rejects_fp32_twin(twins, tmp_path):
    with pytest.raises(UserError, match="not a ternary model"):
        export_packed(twins["fp32"], tmp_path / "x.safetensors")


# --- GGUF ---------------------------------------------------------------------------------------------


def test_tq_blocks_hold_our_codes_and_alpha():
    gguf = pytest.importorskip("gguf")
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(-1, 2, (3, 512), dtype=torch.int8, generator=gen).numpy()
    codes[1, :256] = 0  # an all-zero block keeps alpha as its scale
    alpha = 0.0123
    expected = np.float16(alpha).astype(np.float32) * codes.astype(np.float32)
    for pack, qtype in (
        (tq2_0_blocks, gguf.GGMLQuantizationType.TQ2_0),
        (tq1_0_blocks, gguf.GGMLQuantizationType.TQ1_0),
    ):
        raw = pack(codes, alpha)
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        assert raw.dtype == np.uint8 and raw.shape == (3, 512 // block * type_size)
        np.testing.assert_array_equal(gguf.quants.dequantize(raw, qtype), expected)


def test_wpm_vocab_follows_llama_cpp_bert_convention(tokenizer_path):
    tokens, types, specials = wpm_vocab(tokenizer_path, 512)
    assert len(tokens) == len(types) == 512
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert specials == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert types[1] == 2 and types[3] == 3  # UNKNOWN, CONTROL
    assert tokens[-1] == "[unused511]" and types[-1] == 5  # padding up to the model's vocab
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tokenizer_path)).get_vocab()
    word = next(p for p in vocab if p.isalpha() and len(p) > 2 and not p.startswith("##"))
    piece = next(p for p in vocab if p.startswith("##") and len(p) > 3)
    assert tokens[vocab[word]] == "\u2581" + word
    assert tokens[vocab[piece]] == piece[2:]
    with pytest.raises(UserError, match="only 100"):
        wpm_vocab(tokenizer_path, 100)


def test_gguf_metadata_and_tensor_types(twins, tokenizer_path, tmp_path):
    gguf = pytest.importorskip("gguf")
    out = tmp_path / "t.gguf"
    export_gguf(twins["ternary"], out, tokenizer_path, ternary_type="tq2_0", embed_type="q8_0")
    reader = gguf.GGUFReader(str(out))

    def field(key):
        f = reader.fields[key]
        return f.contents()

    assert field("general.architecture") == "llama"
    assert field("llama.context_length") == 64
    assert field("llama.embedding_length") == 256
    assert field("llama.block_count") == 2
    assert field("llama.feed_forward_length") == 512
    assert field("llama.attention.head_count") == 4
    assert field("llama.rope.dimension_count") == 64
    assert field("tokenizer.ggml.model") == "bert"
    assert field("tokenizer.ggml.eos_token_id") == SEP_ID
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "TQ2_0" and types["blk.1.ffn_down.weight"] == "TQ2_0"
    assert types["token_embd.weight"] == "Q8_0" and types["output.weight"] == "Q8_0"
    assert types["blk.0.attn_norm.weight"] == "F32" and types["output_norm.weight"] == "F32"
    assert len(types) == 2 + 1 + 2 * 9
    # the stored blocks decode to exactly alpha(fp16) * our codes
    qat = load_model(twins["ternary"])
    codes, alpha = ternary_codes(qat.layers[1].mlp.down.weight)
    t = next(t for t in reader.tensors if t.name == "blk.1.ffn_down.weight")
    deq = gguf.quants.dequantize(np.asarray(t.data), gguf.GGMLQuantizationType.TQ2_0).reshape(codes.shape)
    np.testing.assert_array_equal(deq, np.float16(float(alpha)).astype(np.float32) * codes.numpy())


def test_gguf_rejects_dims_not_multiple_of_256(tmp_path, tokenizer_path):
    save_model(
        build_model({**TINY, "d_model": 128, "n_heads": 2, "linear": "ternary"}, seed=0), tmp_path / "m"
    )
    with pytest.raises(UserError, match="multiple of 256"):
        export_gguf(tmp_path / "m", tmp_path / "m.gguf", tokenizer_path)


def _llama_logits(path: Path, ids: list[int]) -> np.ndarray:
    from ternarylm.generate import LlamaCpp

    with LlamaCpp(path, n_ctx=len(ids), threads=1) as llm:
        return llm.decode([ids], all_logits=True)


@pytest.mark.parametrize("ternary_type", ["tq2_0", "tq1_0"])
def test_gguf_ternary_logits_match_qat(twins, tokenizer_path, token_stream, tmp_path, ternary_type):
    pytest.importorskip("llama_cpp")
    out = tmp_path / "t.gguf"
    export_gguf(twins["ternary"], out, tokenizer_path, ternary_type=ternary_type, embed_type="f32")
    ids = token_stream[:64].tolist()
    got = _llama_logits(out, ids)
    with torch.no_grad():
        expected = load_model(twins["ternary"])(torch.tensor([ids]))[0].numpy()
    # llama.cpp quantizes activations to 8 bits per 256-block, we per token: ~0.1 abs at most
    assert np.abs(got - expected).max() < 0.15
    assert (got.argmax(-1) == expected.argmax(-1)).mean() >= 0.97


def test_gguf_fp32_twin_logits_match_exactly(twins, tokenizer_path, token_stream, tmp_path):
    """No q/k permutation: our consecutive-pair RoPE is llama.cpp's own (only the f16 KV cache differs)."""
    pytest.importorskip("llama_cpp")
    out = tmp_path / "f.gguf"
    export_gguf(twins["fp32"], out, tokenizer_path, embed_type="f32", linear_type="f32")
    ids = token_stream[:64].tolist()
    got = _llama_logits(out, ids)
    with torch.no_grad():
        expected = load_model(twins["fp32"])(torch.tensor([ids]))[0].numpy()
    assert np.abs(got - expected).max() < 1e-2


def test_gguf_and_packed_see_the_real_vocab_of_a_padded_head(tokenizer_path, token_stream, tmp_path):
    """vocab 500 computes a 512-row head; every exported file and llama.cpp see 500."""
    pytest.importorskip("llama_cpp")
    import gguf

    model = build_model({**TINY, "vocab_size": 500, "linear": "fp32"}, seed=0)
    assert model.head.weight.shape[0] == 512
    save_model(model, tmp_path / "m")
    out = tmp_path / "f.gguf"
    export_gguf(tmp_path / "m", out, tokenizer_path, embed_type="f32", linear_type="f32")
    shapes = {t.name: list(t.shape) for t in gguf.GGUFReader(str(out)).tensors}
    assert shapes["output.weight"] == [TINY["d_model"], 500]
    ids = token_stream[:64].tolist()
    got = _llama_logits(out, ids)
    with torch.no_grad():
        expected = load_model(tmp_path / "m")(torch.tensor([ids]))[0].numpy()
    assert got.shape == expected.shape == (64, 500)
    assert np.abs(got - expected).max() < 1e-2


def test_llama_cpp_tokenizer_gives_our_ids(twins, tokenizer_path, tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp")
    from tokenizers import Tokenizer

    out = tmp_path / "t.gguf"
    export_gguf(twins["ternary"], out, tokenizer_path)
    ours = Tokenizer.from_file(str(tokenizer_path))
    llm = llama_cpp.Llama(str(out), vocab_only=True, verbose=False)
    try:
        for text in REAL_ISH + SENTENCES:
            assert llm.tokenize(text.encode(), add_bos=False, special=False) == ours.encode(text).ids, text
        assert 1 in ours.encode("xylophone zq").ids  # unknown words -> [UNK] in both
        assert llm.tokenize(b"xylophone zq", add_bos=False) == ours.encode("xylophone zq").ids
    finally:
        llm.close()


# --- generation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["ternary", "fp32", "packed"])
def test_kv_cache_generation_equals_full_recompute(twins, tmp_path, variant):
    if variant == "packed":
        export_packed(twins["ternary"], tmp_path / "p.safetensors")
        model = load_packed(tmp_path / "p.safetensors")
    else:
        model = load_model(twins[variant])
    prompts = [[SEP_ID, 10, 11, 12], [SEP_ID, 20, 21, 22], [SEP_ID, 30]]  # a batch of 2 + a batch of 1
    cached = generate_torch(model, prompts, max_new_tokens=12, use_cache=True)
    full = generate_torch(model, prompts, max_new_tokens=12, use_cache=False)
    assert cached == full
    assert all(len(s) == 12 for s in cached)  # no stop id given
    sampled = generate_torch(model, prompts, 12, temperature=1.0, top_k=20, seed=3)
    assert sampled == generate_torch(model, prompts, 12, temperature=1.0, top_k=20, seed=3)
    single = [generate_torch(model, [p], 12)[0] for p in prompts]
    assert single == cached  # batching does not change greedy outputs


def test_llamacpp_generation_batched_equals_single_and_follows_torch(twins, tokenizer_path, tmp_path):
    pytest.importorskip("llama_cpp")
    from ternarylm.generate import LlamaCpp, generate_llamacpp

    out = tmp_path / "t.gguf"
    export_gguf(twins["ternary"], out, tokenizer_path, embed_type="f32")
    prompts = [[SEP_ID, 10, 11, 12], [SEP_ID, 20], [SEP_ID, 30, 31]]
    with LlamaCpp(out, n_ctx=24, n_seq=3, threads=1) as llm:
        batched = generate_llamacpp(llm, prompts, 12)
    with LlamaCpp(out, n_ctx=24, n_seq=1, threads=1) as llm:
        single = generate_llamacpp(llm, prompts, 12)
    assert batched == single
    torch_out = generate_torch(load_model(twins["ternary"]), prompts, 12)
    agree = np.mean(
        [a == b for x, y in zip(batched, torch_out, strict=True) for a, b in zip(x, y, strict=True)]
    )
    assert agree >= 0.9


def test_generate_and_export_cli(twins, tokenizer_path, tmp_path, capsys):
    from ternarylm.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("generate: {max_new_tokens: 5}\n")
    packed, out = tmp_path / "p.safetensors", tmp_path / "gen.json"
    ternary = twins["ternary"]
    assert main(f"export --config {cfg} --format packed --model {ternary} --out {packed} --fp16".split()) == 0
    gen = f"generate --config {cfg} --model {packed} --tokenizer {tokenizer_path} --num-samples 2 --out {out}"
    assert main([*gen.split(), "--prompt", "Once upon a time"]) == 0
    res = json.loads(out.read_text())
    assert len(res["samples"]) == 2 and 1 <= len(res["samples"][0]["ids"]) <= 5
    assert res["samples"][0]["text"] in capsys.readouterr().out
    # a user mistake is one error line and exit status 2: gguf needs --tokenizer
    assert (
        main(f"export --config {cfg} --format gguf --model {ternary} --out {tmp_path / 'x.gguf'}".split())
        == 2
    )


def test_export_verify_cli(twins, tokenizer_path, token_stream, tmp_path):
    pytest.importorskip("llama_cpp")
    from ternarylm.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    tokens = tmp_path / "val.bin"
    token_stream[:200].numpy().astype(np.uint16).tofile(tokens)
    out = tmp_path / "t.gguf"
    args = f"export --config {cfg} --format gguf --model {twins['ternary']} --tokenizer {tokenizer_path}"
    args += f" --out {out} --verify {tokens}"
    assert main(args.split()) == 0
    stats = json.loads(Path(str(out) + ".verify.json").read_text())
    assert stats["positions"] == 3 * 64  # whole seq_len windows only
    assert stats["max_abs_diff"] < 0.15 and stats["top1_agreement"] >= 0.97


# --- benchmark ------------------------------------------------------------------------------------------


def test_bench_writes_csv_and_env(twins, tokenizer_path, tmp_path):
    from ternarylm.bench import COLUMNS, FORMATS, bench_settings, markdown_table, run_bench

    settings = bench_settings(
        {
            "bench": {
                "new_tokens": 3,
                "prompt_tokens": 4,
                "batch_sizes": [1, 2],
                "threads": 1,
                "warmup": 0,
                "repeats": 4,
                "budget_s": 1e-9,  # every format "too slow": timed runs fall to the floor of 3
                "formats": ["torch-fp32", "torch-nocache", "torch-packed", "gguf-tq2_0"],
            }
        }
    )
    out = tmp_path / "bench" / "results.csv"
    run_bench([twins["ternary"], twins["fp32"]], out, settings, "cpu", tokenizer_path)
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        assert reader.fieldnames == COLUMNS
    try:
        import llama_cpp  # noqa: F401

        formats = {"torch-fp32", "torch-packed", "gguf-tq2_0"}
    except ImportError:
        formats = {"torch-fp32", "torch-packed"}
    seen = {(r["variant"], r["format"], int(r["batch"])) for r in rows}
    expected = {(v, f, b) for f in formats for v in FORMATS[f].variants for b in (1, 2)}
    expected.add(("ternary", "torch-nocache", 1))  # the seed-style form: batch 1 only
    assert seen == expected
    for r in rows:
        assert float(r["ms_per_token"]) > 0 and float(r["weight_mb"]) > 0
        assert int(r["repeats"]) == 3 and float(r["ms_per_token_iqr"]) >= 0
        assert float(r["peak_rss_mb"]) >= float(r["load_rss_mb"]) > 0
        assert (
            float(r["peak_rss_mb"]) >= float(r["rss_mb"]) > 0
            and float(r["peak_rss_mb"]) >= float(r["base_rss_mb"]) > 0
        )
        assert float(r["tokens_per_s"]) == pytest.approx(
            int(r["batch"]) * 1000 / float(r["ms_per_token"]), rel=1e-2
        )
    by = {(r["variant"], r["format"], r["batch"]): float(r["weight_mb"]) for r in rows}
    assert by[("ternary", "torch-packed", "1")] < 0.3 * by[("fp32", "torch-fp32", "1")]
    assert markdown_table(out, batch=1).count("\n") == 2 + sum(r["batch"] == "1" for r in rows)
    env = json.loads((out.parent / "env.json").read_text())
    assert env["threads"] == 1 and env["torch"] == torch.__version__ and "cpu_model" in env
    assert (env["provenance"]["threads"], env["provenance"]["device"]) == (1, "cpu")  # the workers' setting
    assert not list(out.parent.glob(".bench-*"))  # exported files cleaned up
    roles = {(r["variant"], r["format"]): r["role"] for r in rows}
    assert roles[("ternary", "torch-packed")] == "deployed" and roles[("fp32", "torch-fp32")] == "deployed"
    assert roles[("ternary", "torch-fp32")] == roles[("ternary", "torch-nocache")] == "baseline"


def test_bench_says_in_words_why_a_format_was_not_measured(twins, tokenizer_path, tmp_path, monkeypatch):
    """The README's core install has no llama-cpp-python: its GGUF rows are recorded as skipped,
    with the reason the efficiency page prints, and the packed CPU form still gives a ternary row."""
    import json
    import sys

    from ternarylm.bench import bench_settings, run_bench

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now raises ImportError
    bench = {"new_tokens": 2, "prompt_tokens": 2, "batch_sizes": [1], "threads": 1, "warmup": 0}
    bench |= {"repeats": 3, "budget_s": 1e-9, "formats": ["torch-packed", "gguf-tq2_0"]}
    out = tmp_path / "results.csv"
    rows = run_bench([twins["ternary"]], out, bench_settings({"bench": bench}), "cpu", tokenizer_path)
    assert [(r["format"], r["role"]) for r in rows] == [("torch-packed", "deployed")]
    skipped = json.loads((tmp_path / "env.json").read_text())["skipped_formats"]
    assert list(skipped) == ["gguf-tq2_0"] and "llama-cpp-python is not installed" in skipped["gguf-tq2_0"]


def test_bench_roles_and_plan():
    from ternarylm.bench import FORMATS, plan, row_role
    from ternarylm.report.formats import ROLES

    assert row_role("torch-packed", "ternary", "cpu") == "deployed"
    assert row_role("torch-packed", "ternary", "cuda") == "baseline"  # dense dequantized cache
    assert row_role("gguf-tq2_0", "ternary", "cpu") == "deployed"
    assert {row_role(f, v, d) for f in FORMATS for v in FORMATS[f].variants for d in ("cpu", "cuda")} == set(
        ROLES
    )
    settings = {"formats": list(FORMATS), "batch_sizes": [1, 32]}
    cuda = dict(plan("ternary", settings, "cuda", have_llama=False))
    assert cuda == {
        "torch-fp32": [1, 32],
        "torch-nocache": [1],
        "torch-bf16": [1, 32],
        "torch-packed": [1, 32],
    }
    assert "torch-int8" in dict(plan("fp32", settings, "cpu", have_llama=True))
    assert "torch-int8" not in dict(plan("fp32", settings, "cuda", have_llama=True))


def test_iqr():
    from ternarylm.bench_worker import iqr

    assert iqr([3.0]) == 0.0
    assert iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2.0)
    assert iqr([5.0, 1.0, 3.0]) == pytest.approx(2.0)


def test_lean_loader_equals_load_model(twins):
    from ternarylm.bench_worker import load_model_lean

    idx = torch.randint(5, 300, (2, 9), generator=torch.Generator().manual_seed(2))
    for d in twins.values():
        with torch.no_grad():
            assert torch.equal(load_model_lean(d)(idx), load_model(d)(idx))


def test_bench_settings_validate_formats():
    import os

    import yaml

    from ternarylm.bench import bench_settings
    from ternarylm.config import DEFAULTS_PATH

    # the package's defaults file is the root config.yaml itself (a link), not a copy
    assert DEFAULTS_PATH.resolve() == (Path(__file__).resolve().parents[1] / "config.yaml").resolve()
    root = yaml.safe_load(DEFAULTS_PATH.read_text())["bench"]
    settings = bench_settings({"bench": {"devices": ["cpu"], "new_tokens": 7}})
    # defaults come from the root config.yaml (no second defaults dict), the preset wins
    assert settings["batch_sizes"] == root["batch_sizes"] and settings["new_tokens"] == 7
    assert root["threads"] is None and settings["threads"] == len(os.sched_getaffinity(0))
    assert bench_settings({"bench": {"threads": 3}})["threads"] == 3
    with pytest.raises(UserError, match="unknown"):
        bench_settings({"bench": {"formats": ["gguf-q4"]}})


def test_int8_matmul_equals_the_integer_matmul():
    from ternarylm.packed import int8_matmul

    g = torch.Generator().manual_seed(0)
    for m, k in ((1, 768), (5, 2048), (33, 256)):
        xq = torch.randint(-128, 128, (m, k), generator=g, dtype=torch.int8)
        xq[0, :] = -128  # the extreme row: |sum| = 128 * k
        codes = torch.randint(-1, 2, (96, k), generator=g, dtype=torch.int8)
        codes[0, :] = -1
        ref = torch._int_mm(xq, codes.t())
        out = int8_matmul(xq, codes)
        assert out.dtype == torch.float32 and torch.equal(out, ref.float())
        assert out[0, 0] == 128 * k


def test_pack_model_swaps_every_bitlinear():
    model = build_model({**TINY, "linear": "ternary"}, seed=0)
    n = sum(isinstance(m, BitLinear) for m in model.modules())
    pack_model(model)
    assert n == 14 and sum(isinstance(m, PackedTernaryLinear) for m in model.modules()) == n
