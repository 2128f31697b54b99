"""The GPU fast paths, exercised on CPU: eval-mode weight caches, the
padded output layer, model+loss compiled as one graph without eval recompiles."""

from __future__ import annotations

import functools

import pytest
import torch

from ternarylm import train as T
from ternarylm.model import ModelConfig, build_model
from ternarylm.packed import PackedTernaryLinear, pack_model
from ternarylm.quant import BitLinear

TINY = dict(vocab_size=100, d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, seq_len=16, dropout=0.0)
TCFG = {
    "lr": 3e-3,
    "betas": [0.9, 0.98],
    "weight_decay": 0.01,
    "warmup_frac": 0.1,
    "grad_clip": 1.0,
    "label_smoothing": 0.1,
}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _batch(n: int = 3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, TINY["vocab_size"], (n, TINY["seq_len"] + 1), generator=g)


# --- eval-mode BitLinear caches its quantized weights ---------------------------------------------


def _count_weight_quantizations(monkeypatch) -> list[int]:
    from ternarylm import quant

    calls = [0]
    real = quant.quantize_weight

    def counting(w):
        calls[0] += 1
        return real(w)

    monkeypatch.setattr(quant, "quantize_weight", counting)
    return calls


def test_eval_cache_gives_the_uncached_logits_and_quantizes_once(monkeypatch):
    model = build_model(ModelConfig(**TINY, linear="ternary"), seed=0).eval()
    idx = _batch()[:, :-1]
    with torch.enable_grad():  # autograd on: the uncached path, every call quantizes afresh
        uncached = model(idx).detach()
    calls = _count_weight_quantizations(monkeypatch)
    with torch.no_grad():
        first, second = model(idx), model(idx)
    n_bit = sum(isinstance(m, BitLinear) for m in model.modules())
    assert torch.equal(first, uncached) and torch.equal(second, uncached)
    assert calls[0] == n_bit  # the second forward used the cache


def test_eval_cache_is_invalidated_by_an_optimizer_step_and_by_train():
    model = build_model(ModelConfig(**TINY, linear="ternary"), seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    b = _batch()
    model.eval()
    with torch.no_grad():
        before = model(b[:, :-1])
    model.train()
    T.lm_loss(model(b[:, :-1]), b[:, 1:]).backward()
    opt.step()  # in place: bumps every weight's version counter
    model.eval()
    with torch.no_grad():
        after = model(b[:, :-1])
        fresh = build_model(ModelConfig(**TINY, linear="ternary"), seed=0)
        fresh.load_state_dict(model.state_dict())
        expected = fresh.eval()(b[:, :-1])
    assert not torch.equal(before, after)
    assert torch.equal(after, expected)
    # an in-place edit while staying in eval mode is seen too
    layer = model.layers[0].attn.q
    with torch.no_grad():
        cached = layer.quantized_weight().clone()
        layer.weight.mul_(-1)
        assert torch.equal(layer.quantized_weight(), -cached)
    model.train()
    assert all(m._wq is None for m in model.modules() if isinstance(m, BitLinear))


def test_qkv_share_one_activation_quantization(monkeypatch):
    from ternarylm import quant

    model = build_model(ModelConfig(**TINY, linear="ternary"), seed=0).eval()
    calls = [0]
    real = quant.quantize_activation

    def counting(x, bits=8):
        calls[0] += 1
        return real(x, bits)

    monkeypatch.setattr(quant, "quantize_activation", counting)
    with torch.no_grad():
        model(_batch()[:, :-1])
    # per layer: one for q/k/v, one for o, one for gate/up, one for down (was 7)
    assert calls[0] == 4 * TINY["n_layers"]


# --- the CUDA packed path dequantizes once --------------------------------------------------------


def test_packed_dense_mode_unpacks_once_and_equals_unpack(monkeypatch):
    from ternarylm import packed

    model = build_model(ModelConfig(**TINY, linear="ternary"), seed=0).eval()
    idx = _batch()[:, :-1]
    with torch.no_grad():
        ref = pack_model(build_model(ModelConfig(**TINY, linear="ternary"), seed=0).eval(), mode="unpack")(
            idx
        )
        dense = pack_model(model, mode="dense")
        calls = [0]
        real = packed.unpack_codes

        def counting(*a, **k):
            calls[0] += 1
            return real(*a, **k)

        monkeypatch.setattr(packed, "unpack_codes", counting)
        out1, out2 = dense(idx), dense(idx)
    n = sum(isinstance(m, PackedTernaryLinear) for m in dense.modules())
    assert torch.equal(out1, ref) and torch.equal(out2, ref)
    assert calls[0] == n  # unpacked once per layer, not per call


def test_packed_on_a_gpu_uses_the_dense_cache():
    from ternarylm.packed import kernel_for

    assert kernel_for("int8", torch.device("cuda")) == "dense"
    assert kernel_for("int8", torch.device("cpu")) == "int8"
    assert kernel_for("unpack", torch.device("cuda")) == "unpack"


# --- padded output layer --------------------------------------------------------------------------


def test_padded_vocab_gives_the_unpadded_loss_logits_and_gradients():
    padded = build_model(ModelConfig(**TINY, vocab_multiple=64), seed=0)
    plain = build_model(ModelConfig(**TINY, vocab_multiple=1), seed=0)
    assert padded.head.weight.shape[0] == 128 and plain.head.weight.shape[0] == 100
    b = _batch()
    lp, lu = padded.loss(b[:, :-1], b[:, 1:], 0.1), plain.loss(b[:, :-1], b[:, 1:], 0.1)
    assert torch.equal(lp, lu)
    lp.backward()
    lu.backward()
    grads = dict(padded.named_parameters())
    for name, p in plain.named_parameters():
        assert torch.equal(grads[name].grad[: p.shape[0]], p.grad), name
    assert grads["head.weight"].grad[100:].abs().max() == 0  # padding rows never learn
    with torch.no_grad():
        assert torch.equal(padded.eval()(b), plain.eval()(b))
        assert padded(b).shape[-1] == 100


def test_padded_vocab_is_invisible_in_saved_state(tmp_path):
    from ternarylm.model import load_model, save_model
    from ternarylm.packed import load_packed, save_packed

    model = build_model(ModelConfig(**TINY, linear="ternary"), seed=0).eval()
    assert model.state_dict()["head.weight"].shape[0] == 100
    assert model.num_params() == build_model(ModelConfig(**TINY, vocab_multiple=1), seed=0).num_params()
    save_model(model, tmp_path / "m")
    save_packed(model, tmp_path / "p.safetensors")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "p.safetensors"), "pt") as f:
        assert f.get_slice("head.weight").get_shape()[0] == 100
    b = _batch()
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "m")(b), model(b))
        assert load_packed(tmp_path / "p.safetensors", mode="unpack")(b).shape[-1] == 100


# --- a compiled train + eval sequence compiles a bounded number of graphs -------------------------


def test_compiled_training_and_eval_do_not_recompile(monkeypatch):
    import torch._dynamo
    from torch._dynamo.utils import counters

    # dynamo's graph capture is what recompiles; the eager backend skips the C++ codegen
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    counters.clear()
    device = torch.device("cpu")
    model = build_model(ModelConfig(**TINY, linear="ternary"), seed=0).train()
    opt = T.make_optimizer(model, TCFG, device)
    sched = T.make_scheduler(opt, TCFG, 50)
    fmodel = T.maybe_compile(model, True, device)
    ctx = T.autocast_context(device, "fp32")
    g = torch.Generator().manual_seed(3)
    windows = T.TokenWindows(torch.randint(0, 100, (16 * 7 + 1,), generator=g).numpy(), 16)
    for i in range(3):
        b = _batch(4, seed=i)
        T.train_step(fmodel, b[:, :-1], b[:, 1:], opt, sched, TCFG, ctx)
        # 7 windows in batches of 4: a full and a partial eval batch every time
        T.evaluate_loss(fmodel, windows, 4, None, ctx, device, 0.1)
    fmodel.train()
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    torch._dynamo.reset()


@pytest.mark.parametrize(
    "capability, expected", [((7, 5), "fp32"), ((7, 0), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16")]
)
def test_precision_auto_is_bf16_only_where_the_gpu_has_it_natively(monkeypatch, capability, expected):
    """A T4 (7.5) trains in fp32, not in emulated bf16; stand-in device capability."""
    from ternarylm import trainkit as tk

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda")
    assert tk.resolve_precision(cuda, "auto") == expected
    assert tk.resolve_precision(torch.device("cpu"), "auto") == "fp32"
    assert tk.resolve_precision(cuda, "bf16") == "bf16" and tk.resolve_precision(cuda, "fp32") == "fp32"
    ctx = tk.autocast_context(torch.device("cpu"), "auto")
    assert not isinstance(ctx, torch.autocast)  # CPU auto: plain fp32


def test_batches_reach_a_gpu_pinned_and_non_blocking(monkeypatch):
    """No blocking pageable host->device copy per step (recorded with stand-ins)."""
    from ternarylm import trainkit as tk

    calls = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: calls.append("pin") or t)
    monkeypatch.setattr(
        torch.Tensor, "to", lambda t, dev, non_blocking=False: calls.append(non_blocking) or t
    )
    a, b = torch.zeros(2), torch.ones(3)
    assert tk.to_device(torch.device("cuda"), a, b) == (a, b)
    assert calls == ["pin", True, "pin", True]
    calls.clear()
    assert tk.to_device(torch.device("cpu"), a, b) == (a, b) and calls == []  # CPU: nothing to copy
