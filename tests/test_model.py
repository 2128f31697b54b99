import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_model

from ternarylm.model import ModelConfig, apply_rope, build_model, load_model, save_model
from ternarylm.quant import BitLinear, quantize_activation, quantize_weight, ternary_codes, ternary_state

TINY = tiny_model(vocab_size=97, seq_len=16)


def test_paper_config_has_about_132m_parameters():
    m = build_model(ModelConfig(linear="ternary"), seed=0)
    assert 130e6 < m.num_params() < 134e6
    assert sum(isinstance(x, BitLinear) for x in m.modules()) == 12 * 7
    assert not any(
        getattr(x, "bias", None) is not None for x in m.modules() if isinstance(x, torch.nn.Linear)
    )


def test_twins_share_initial_weights_and_differ_only_in_linear_type():
    t = build_model(ModelConfig(**TINY, linear="ternary"), seed=3)
    f = build_model(ModelConfig(**TINY, linear="fp32"), seed=3)
    st, sf = t.state_dict(), f.state_dict()
    assert st.keys() == sf.keys()
    assert all(torch.equal(st[k], sf[k]) for k in st)
    assert type(t.layers[0].attn.q) is BitLinear and type(f.layers[0].attn.q) is torch.nn.Linear
    other = build_model(ModelConfig(**TINY, linear="fp32"), seed=4)
    assert not torch.equal(other.tok_emb.weight, f.tok_emb.weight)


def test_quantize_list_selects_ternary_projections():
    m = build_model(ModelConfig(**TINY, linear="ternary", quantize=["q", "down"]), seed=0)
    assert isinstance(m.layers[0].attn.q, BitLinear) and isinstance(m.layers[0].mlp.down, BitLinear)
    assert type(m.layers[0].attn.k) is torch.nn.Linear


def test_ternary_weights_are_alpha_times_codes():
    w = torch.randn(32, 64)
    q = quantize_weight(w)
    codes, alpha = ternary_codes(w)
    assert torch.allclose(alpha, w.abs().mean())
    assert set(codes.unique().tolist()) <= {-1, 0, 1}
    assert torch.equal(q, codes.float() * alpha)
    # about 31 % zeros for Gaussian weights: |z| < 0.5 * E|z|
    assert 0.25 < (codes == 0).float().mean() < 0.37


def test_activation_quantization_is_per_token_8bit():
    x = torch.randn(3, 5, 64)
    q = quantize_activation(x)
    scale = 127 / x.abs().amax(-1, keepdim=True)
    levels = q * scale
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert levels.abs().max() <= 128
    assert torch.allclose(q.abs().amax(-1), x.abs().amax(-1))


def test_ste_passes_gradient_through_quantizers():
    torch.manual_seed(0)
    layer = BitLinear(64, 32)
    x = torch.randn(4, 64, requires_grad=True)
    g = torch.randn(4, 32)
    (layer(x) * g).sum().backward()
    wq, xq = quantize_weight(layer.weight.detach()), quantize_activation(x.detach())
    assert torch.allclose(layer(x), F.linear(xq, wq), atol=1e-6)
    assert torch.allclose(layer.weight.grad, g.T @ xq, atol=1e-5)
    assert torch.allclose(x.grad, g @ wq, atol=1e-5)


def test_bf16_autocast_forward_backward_on_cpu():
    m = build_model(ModelConfig(**TINY, linear="ternary"), seed=0)
    idx = torch.randint(0, 97, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(m(idx).flatten(0, 1).float(), idx.flatten())
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_rope_rotates_consecutive_pairs():
    x = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 1, 4)
    cos, sin = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])  # pair 0 by 90 deg, pair 1 by 0
    assert torch.allclose(apply_rope(x, cos, sin).flatten(), torch.tensor([0.0, 1.0, 0.0, 1.0]))


@pytest.mark.parametrize("variant", ["ternary", "fp32"])
def test_kv_cache_matches_full_forward(variant):
    m = build_model(ModelConfig(**TINY, linear=variant), seed=1).eval()
    idx = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        full = m(idx)
        a, cache = m.forward_cached(idx[:, :7])
        b, cache = m.forward_cached(idx[:, 7:9], cache)
        c, _ = m.forward_cached(idx[:, 9:], cache)
    assert torch.allclose(torch.cat([a, b, c], 1), full, atol=1e-5)


def test_causality():
    m = build_model(ModelConfig(**TINY, linear="ternary"), seed=1).eval()
    idx = torch.randint(0, 97, (1, 10))
    idx2 = idx.clone()
    idx2[0, 7:] = (idx2[0, 7:] + 1) % 97
    with torch.no_grad():
        assert torch.allclose(m(idx)[0, :7], m(idx2)[0, :7], atol=1e-6)


def test_save_and_load_roundtrip(tmp_path):
    m = build_model(ModelConfig(**TINY, linear="ternary"), seed=2).eval()
    save_model(m, tmp_path, {"seed": 2})
    m2 = load_model(tmp_path)
    idx = torch.randint(0, 97, (1, 8))
    assert torch.equal(m(idx), m2(idx))
    assert set(ternary_state(m2)) == {
        f"layers.{i}.{p}"
        for i in range(2)
        for p in ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down")
    }


def test_bad_model_config_is_rejected():
    with pytest.raises(ValueError, match="linear"):
        ModelConfig(linear="int3")
    with pytest.raises(ValueError, match="quantize"):
        ModelConfig(quantize=["qq"])


def test_noncausal_control_sees_the_next_token():
    """fp32-noncausal: the output at position t depends on token t+1 (its target); causal: never."""
    from ternarylm.model import VARIANTS, variant_config
    from ternarylm.report.formats import NONCAUSAL

    tiny = {k: v for k, v in TINY.items() if k != "vocab_size"}
    causal = build_model(variant_config(tiny, "fp32", 97), seed=1).eval()
    control = build_model(variant_config(tiny, NONCAUSAL, 97), seed=1).eval()
    assert VARIANTS[NONCAUSAL] == {"linear": "fp32", "causal": False} and not control.cfg.causal
    # the same initial weights as the fp32 twin of that seed: only the mask differs
    assert all(torch.equal(a, b) for a, b in zip(causal.state_dict().values(), control.state_dict().values()))
    idx = torch.randint(0, 97, (1, 10))
    nxt = idx.clone()
    nxt[0, 5] = (nxt[0, 5] + 1) % 97  # the target of position 4
    with torch.no_grad():
        assert torch.allclose(causal(idx)[0, :5], causal(nxt)[0, :5], atol=1e-6)
        assert not torch.allclose(control(idx)[0, 4], control(nxt)[0, 4], atol=1e-3)
        with pytest.raises(ValueError, match="causal"):
            control.forward_cached(idx)


def test_old_config_without_causal_loads_as_causal(tmp_path):
    import json

    save_model(build_model(ModelConfig(**TINY, linear="fp32"), seed=0), tmp_path, {"seed": 0})
    meta = json.loads((tmp_path / "config.json").read_text())
    del meta["model"]["causal"]  # written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(meta))
    assert load_model(tmp_path).cfg.causal is True


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--model", "{m}", "--tokenizer", "{tok}"],
        ["export", "--format", "gguf", "--model", "{m}", "--tokenizer", "{tok}", "--out", "{out}/x.gguf"],
        ["export", "--format", "packed", "--model", "{m}", "--out", "{out}/x.safetensors"],
        ["export", "--format", "hf", "--model", "{m}", "--tokenizer", "{tok}", "--out", "{out}/hf"],
    ],
)
def test_generate_and_export_refuse_a_noncausal_model_in_one_line(tmp_path, capfd, argv):
    from ternarylm.cli import main
    from ternarylm.synthetic import synthetic_corpus
    from ternarylm.tokenizer import train_tokenizer

    tok = tmp_path / "tokenizer.json"
    tok.write_text(train_tokenizer(synthetic_corpus(20, 0), 97).to_str())
    model = build_model(ModelConfig(**TINY, linear="fp32", causal=False), seed=0)
    save_model(model, tmp_path / "m", {"variant": "fp32-noncausal", "seed": 0})
    args = [a.format(m=tmp_path / "m", tok=tok, out=tmp_path / "out") for a in argv]
    capfd.readouterr()
    assert main(args) == 2
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "UserError" not in err, err  # one line, no traceback of it
    assert "non-causal model" in errors[0] and errors[0].endswith("only the causal twins can")
    assert not (tmp_path / "out").exists()  # nothing written
