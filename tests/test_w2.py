"""torch-w2: the 2-bit Triton kernels (CPU, TRITON_INTERPRET=1) against the pure-torch reference and
the trained forward; the GPU bench formats and their roles.

The interpreter runs each Triton program as numpy calls, so the paper-size shapes run with large
tiles (w2_triton.INTERPRETER_BLOCKS) and the GPU tiles run on small awkward shapes. Integer sums are
exact in both kernels and in the reference, so kernel and reference must agree bit for bit.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch

_PRIOR_INTERPRET = os.environ.get("TRITON_INTERPRET")
os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are defined (w2_triton's import)
pytest.importorskip(
    "triton", reason="the torch-w2 kernels need triton (the [deploy] extra; CUDA torch has it)"
)

from ternarylm.cli import main as cli_main  # noqa: E402
from ternarylm.generate import generate_torch  # noqa: E402
from ternarylm.model import build_model, lm_loss, load_model, save_model  # noqa: E402
from ternarylm.packed import PackedTernaryLinear, pack_codes, pack_model, save_packed  # noqa: E402
from ternarylm.quant import BitLinear  # noqa: E402
from ternarylm.tokenizer import SEP_ID, train_tokenizer  # noqa: E402
from ternarylm.w2 import (  # noqa: E402
    W2Linear,
    load_w2,
    quantize_rows,
    resolve_kernel,
    to_w2,
    w2_matmul,
    w2_matmul_reference,
)
from ternarylm.w2_triton import GPU_BLOCKS  # noqa: E402

torch.set_num_threads(1)
pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="needs TRITON_INTERPRET=1")


@pytest.fixture(scope="module", autouse=True)
def _interpreter_only_here():
    """Later tests (and the bench workers they start) must not inherit the interpreter setting."""
    yield
    if _PRIOR_INTERPRET is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = _PRIOR_INTERPRET


TINY = dict(vocab_size=400, d_model=128, n_layers=2, n_heads=4, ffn_hidden=256, seq_len=64, dropout=0.0)
TEXT = [
    "Once upon a time, there was a little girl named Lily.",
    "She loved to play outside in the sunshine with her dog, Max.",
    "One day, Lily found a shiny red ball under a big green tree.",
    "The bird sang a happy song. The cat was sleepy and went to bed.",
]


def operands(m: int, k: int, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(-1, 2, (n, k), generator=g, dtype=torch.int8)
    xq, scale = quantize_rows(torch.randn(m, k, generator=g) * 3)
    return xq, pack_codes(codes), 0.037 / scale


# paper model: d 768, SwiGLU 2048 (and the 3072); a vocab-sized GEMM (the head is not ternary
# here, but the kernel must not care); batch 1 / 8 (GEMV) and 32 (GEMM)
@pytest.mark.parametrize(
    "m,k,n",
    [(1, 768, 3072), (8, 3072, 768), (32, 768, 3072), (32, 3072, 768), (1, 768, 2048), (8, 2048, 768),
     (32, 768, 30522), (3, 1001, 130), (17, 250, 70)],
)  # fmt: skip
def test_kernel_equals_reference(m, k, n):
    xq, packed, s = operands(m, k, n)
    got = w2_matmul(xq, packed, k, s, kernel="triton")
    assert torch.equal(got, w2_matmul_reference(xq, packed, k, s))


@pytest.mark.parametrize("m,k,n", [(1, 250, 70), (5, 1001, 33), (8, 130, 64), (40, 1001, 130), (9, 64, 70)])
def test_gpu_tiles_equal_reference(m, k, n):
    """The tile sizes a GPU runs, K not a multiple of the block (nor of 4), N and M ragged."""
    from ternarylm.w2_triton import w2_matmul_triton

    xq, packed, s = operands(m, k, n, seed=1)
    assert torch.equal(w2_matmul_triton(xq, packed, k, s, GPU_BLOCKS), w2_matmul_reference(xq, packed, k, s))


def test_gpu_gemm_tiles_meet_the_nvidia_int8_dot_minimum():
    """The interpreter accepts any tl.dot shape; an NVIDIA GPU needs K >= 32 for int8 (checked here,
    where no GPU compiles the kernel)."""
    nvidia = pytest.importorskip(
        "triton.backends.nvidia.compiler", reason="triton without its NVIDIA backend"
    )
    import triton.language as tl

    min_m, min_n, min_k = nvidia.min_dot_size(None)(tl.int8, tl.int8)
    bm, bn, bkb = GPU_BLOCKS["gemm"]
    assert bm >= max(min_m, 16) and bn >= max(min_n, 16) and bkb >= min_k


def test_reference_is_the_integer_matmul():
    xq, packed, s = operands(4, 37, 9)
    from ternarylm.packed import unpack_codes

    exact = (xq.long() @ unpack_codes(packed, 37).long().T).double() * s.double()[:, None]
    assert torch.allclose(w2_matmul_reference(xq, packed, 37, s).double(), exact, rtol=1e-6, atol=0)


@pytest.mark.parametrize("batch", [1, 8, 32])
def test_w2_linear_is_the_packed_int8_forward_and_close_to_bitlinear(batch):
    torch.manual_seed(0)
    lin = BitLinear(300, 96).eval()
    x = torch.randn(batch, 3, 300)
    with torch.no_grad():
        ref = lin(x)
        got = W2Linear.from_module(lin, "triton")(x)
        int8 = PackedTernaryLinear.from_bitlinear(lin, "int8")(x)
    assert got.shape == ref.shape and torch.equal(got, int8)  # same integer sums, same epilogue
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> Path:
    """A tiny ternary twin trained 40 steps (peaked predictions, as a real model's)."""
    root = tmp_path_factory.mktemp("w2")
    tok = train_tokenizer(TEXT * 30, vocab_size=TINY["vocab_size"])
    tok.save(str(root / "tokenizer.json"))
    ids: list[int] = []
    for s in TEXT * 10:
        ids += [SEP_ID, *tok.encode(s).ids]
    stream = torch.tensor(ids)
    model = build_model({**TINY, "linear": "ternary"}, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        ix = torch.randint(0, len(stream) - 33, (8,), generator=gen)
        loss = lm_loss(
            model(torch.stack([stream[i : i + 32] for i in ix])),
            torch.stack([stream[i + 1 : i + 33] for i in ix]),
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_model(model, root / "ternary")
    torch.save(stream, root / "stream.pt")
    return root


def test_whole_model_matches_trained_forward(twin):
    """Same tolerance as the bitnet export (tests/test_hf.py): max |dlogit| < 0.1, mean < 5e-3, top-1 >= 99 %.
    Integer sums scaled once vs BitLinear's float matmul: ~1e-7 differences that can flip an activation on
    a rounding tie of the next layer's 8-bit quantizer. Measured on this twin: max 2.9e-6 on logits up to
    |10|, mean 3.6e-7, top-1 identical."""
    stream = torch.load(twin / "stream.pt")
    ids = stream[: 2 * 64].reshape(2, 64)
    model = load_model(twin / "ternary")
    with torch.no_grad():
        ref = model(ids)
        got = to_w2(model, "triton")(ids)
    assert not any(isinstance(m, BitLinear) for m in model.modules())
    diff = (got - ref).abs()
    assert diff.max() < 0.1 and diff.mean() < 5e-3
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.99


def test_greedy_generation_equals_ternarylm_generate(twin):
    out = twin / "gen.json"
    args = ["generate", "--backend", "torch", "--model", str(twin / "ternary")]
    args += [
        "--tokenizer",
        str(twin / "tokenizer.json"),
        "--prompt",
        "Once upon a time",
        "--max-new-tokens",
        "16",
    ]
    assert cli_main([*args, "--out", str(out)]) == 0
    ours = json.loads(out.read_text())["samples"][0]["ids"]
    from ternarylm.tokenizer import load_tokenizer

    prompt = [SEP_ID, *load_tokenizer(twin / "tokenizer.json").encode("Once upon a time").ids]
    save_packed(load_model(twin / "ternary"), twin / "t.packed.safetensors")
    model = load_w2(twin / "t.packed.safetensors", kernel="triton")  # decodes with the KV cache
    got = generate_torch(model, [prompt], 16, stop_id=SEP_ID)[0]
    assert got == ours and len(got) > 3


def test_swap_keeps_weights_2bit_and_shares_packed_buffers(twin):
    packed = pack_model(load_model(twin / "ternary"), "unpack")
    before = {n: m.packed for n, m in packed.named_modules() if isinstance(m, PackedTernaryLinear)}
    to_w2(packed)
    w2 = {n: m for n, m in packed.named_modules() if isinstance(m, W2Linear)}
    assert set(w2) == set(before) and len(w2) == 7 * TINY["n_layers"]
    assert all(w2[n].packed is before[n] for n in w2)  # no copy of the codes
    assert {b.dtype for m in w2.values() for b in m.buffers()} == {torch.uint8, torch.float32}
    assert not list(m for m in w2.values() if list(m.parameters()))


def test_auto_kernel_falls_back_to_reference(monkeypatch):
    from ternarylm import w2

    assert resolve_kernel("auto", torch.device("cpu")) == "triton"  # interpreter on
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert resolve_kernel("auto", torch.device("cpu")) == "reference"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(w2, "triton_kernels", lambda: None)  # triton not installed
    assert resolve_kernel("auto", torch.device("cuda")) == "reference"
    xq, packed, s = operands(1, 8, 4)
    with pytest.raises(RuntimeError, match="needs the triton package"):
        w2_matmul(xq, packed, 8, s, kernel="triton")


# --- bench -------------------------------------------------------------------------------------------


def test_gpu_roles_and_plan():
    from ternarylm.bench import FORMATS, plan, row_role

    assert row_role("torch-w2", "ternary", "cuda") == row_role("hf-bitnet", "ternary", "cuda") == "deployed"
    assert row_role("torch-w2", "ternary", "cpu") == row_role("hf-bitnet", "ternary", "cpu") == "baseline"
    assert (
        row_role("torch-bf16", "fp32", "cuda") == "baseline"
        and row_role("torch-bf16", "fp32", "cpu") == "deployed"
    )
    assert row_role("torch-fp32", "fp32", "cuda") == "deployed"
    assert row_role("torch-packed", "ternary", "cuda") == "baseline"
    settings = {"formats": list(FORMATS), "batch_sizes": [1, 32]}
    cuda = dict(plan("ternary", settings, "cuda", have_llama=False))
    assert cuda["torch-w2"] == cuda["hf-bitnet"] == [1, 32]
    assert "hf-bitnet" not in dict(plan("ternary", settings, "cuda", have_llama=False, have_hf=False))


def test_bench_devices_default_follows_the_visible_gpus():
    from ternarylm.gpus import bench_devices

    assert bench_devices(None, {"CUDA_VISIBLE_DEVICES": "0"}) == ["cpu", "cuda"]
    assert bench_devices(None, {"CUDA_VISIBLE_DEVICES": ""}) == ["cpu"]
    assert bench_devices(None, {"TERNARYLM_GPU_COUNT": "2"}) == ["cpu", "cuda"]
    assert bench_devices(["cpu"], {"CUDA_VISIBLE_DEVICES": "0"}) == ["cpu"]  # an explicit list wins
    assert bench_devices([], {"CUDA_VISIBLE_DEVICES": "0"}) == []


def test_stand_in_cuda_bench_picks_torch_w2_and_cpu_ignores_gpu_forms():
    """What the efficiency claims see: on cuda the 2-bit row stands for the ternary model, on CPU the
    GPU forms (baselines there) never do."""
    import pandas as pd

    from ternarylm.bench import row_role
    from ternarylm.report.tables import pick_rows

    def rows(device, forms):
        out = [
            dict(variant=v, format=f, role=row_role(f, v, device), batch=1, weight_mb=mb)
            for v, f, mb in forms
        ]
        df = pd.DataFrame(out)
        df["runtime"] = df["format"].str.split("-").str[0]
        return df

    gpu = rows("cuda", [("fp32", "torch-fp32", 528.0), ("fp32", "torch-bf16", 264.0), ("ternary", "torch-fp32", 528.0),
                        ("ternary", "torch-packed", 140.0), ("ternary", "torch-w2", 210.0), ("ternary", "hf-bitnet", 360.0)])  # fmt: skip
    picked = pick_rows(gpu)
    assert picked["ternary"]["format"] == "torch-w2" and picked["fp32"]["format"] == "torch-fp32"
    cpu = rows(
        "cpu",
        [("fp32", "torch-fp32", 528.0), ("ternary", "torch-w2", 210.0), ("ternary", "hf-bitnet", 360.0)],
    )
    assert pick_rows(cpu)["ternary"] is None


def test_bench_dry_run_has_the_gpu_forms_as_cpu_baselines(twin, tmp_path):
    from ternarylm.bench import bench_settings, have_transformers_bitnet, run_bench

    settings = bench_settings(
        {"bench": {"new_tokens": 3, "prompt_tokens": 4, "batch_sizes": [1, 2], "threads": 1, "warmup": 0,
                   "repeats": 1, "formats": ["torch-fp32", "torch-w2", "hf-bitnet"]}}
    )  # fmt: skip
    out = tmp_path / "bench" / "results.csv"
    run_bench([twin / "ternary"], out, settings, "cpu", twin / "tokenizer.json")
    with open(out, newline="") as f:
        rows = {(r["variant"], r["format"], int(r["batch"])): r for r in csv.DictReader(f)}
    new = ["torch-w2"] + (["hf-bitnet"] if have_transformers_bitnet() else [])
    for fmt in new:
        for b in (1, 2):
            r = rows[("ternary", fmt, b)]
            assert (r["device"], r["role"], r["gpu_peak_mb"]) == ("cpu", "baseline", "")
            assert float(r["ms_per_token"]) > 0
    fp32_mb = float(rows[("ternary", "torch-fp32", 1)]["weight_mb"])  # the latent fp32 weights
    # 2-bit codes + fp32 embedding/head: below the fp32 form, whose linears are 16x bigger
    assert float(rows[("ternary", "torch-w2", 1)]["weight_mb"]) < 0.8 * fp32_mb
    assert not list(out.parent.glob(".bench-*"))  # exported file and folder cleaned up


def test_check_w2_targets_read_the_gpu_rows(tmp_path):
    """benchmarks/gpu/check_w2.py's summary of the issue's targets, on a stand-in cuda CSV."""
    import importlib.util

    from ternarylm.bench import COLUMNS

    spec = importlib.util.spec_from_file_location(
        "check_w2", Path(__file__).parents[1] / "benchmarks/gpu/check_w2.py"
    )
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    base = dict.fromkeys(COLUMNS, "") | {"device": "cuda", "batch": "1", "decode": "cuda-graph"}
    rows = [
        base | {"variant": "fp32", "format": "torch-fp32", "ms_per_token": "1.2", "gpu_peak_mb": "1197"},
        base | {"variant": "ternary", "format": "torch-w2", "ms_per_token": "0.9", "gpu_peak_mb": "498"},
    ]
    path = tmp_path / "results.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    t = check.targets(path)
    assert t["w2_le_1ms"] and t["w2_le_fp32"] and t["ratio_ge_2.4"]
    assert t["gpu_peak_ratio_fp32_over_w2"] == pytest.approx(1197 / 498)
    rows[1]["ms_per_token"] = "1.5"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    t = check.targets(path)
    assert not t["w2_le_1ms"] and not t["w2_le_fp32"]
