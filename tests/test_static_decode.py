"""The fixed-shape decode step (ternarylm.static_decode) against forward_cached, eagerly on CPU.

The CUDA graph around it is CUDA-only (benchmarks/gpu/check_w2.py runs it on a GPU)."""

from __future__ import annotations

import pytest
import torch

from ternarylm.generate import generate_torch
from ternarylm.model import build_model
from ternarylm.static_decode import StaticDecoder

torch.set_num_threads(1)
TINY = dict(vocab_size=300, d_model=64, n_layers=2, n_heads=4, ffn_hidden=128, seq_len=32, dropout=0.0)


@pytest.mark.parametrize("variant", ["ternary", "fp32"])
def test_static_steps_equal_forward_cached(variant):
    model = build_model({**TINY, "linear": variant}, seed=0).eval()
    prompt = torch.randint(5, 300, (3, 5), generator=torch.Generator().manual_seed(0))
    dec = StaticDecoder(model, batch=3, max_len=40, dtype=torch.float32)  # past the rope table (32)
    first = dec.prefill(prompt)
    got = [first.argmax(-1)]
    with torch.inference_mode():
        logits, cache = model.forward_cached(prompt)
        for _ in range(30):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            logits, cache = model.forward_cached(nxt, cache)
            step = dec.step()
            assert torch.allclose(step, logits[:, -1], atol=1e-4, rtol=0)
            got.append(step.argmax(-1))
    ids = torch.stack(got[:-1], 1).tolist()
    assert ids == generate_torch(model, prompt.tolist(), 30)
    assert int(dec.pos) == 35


def test_prompt_must_leave_room():
    model = build_model({**TINY, "linear": "fp32"}, seed=0).eval()
    with pytest.raises(ValueError, match="no room"):
        StaticDecoder(model, 1, 4, torch.float32).prefill(torch.ones(1, 4, dtype=torch.long))


def test_bench_graph_timing_decodes_new_tokens(monkeypatch):
    """bench_worker's CUDA-graph timing function, with the capture skipped (CPU): it prefills and
    steps exactly new_tokens times per run, from the prompt again each run."""
    from ternarylm import bench_worker

    monkeypatch.setattr(StaticDecoder, "capture", lambda self: None)
    model = build_model({**TINY, "linear": "ternary"}, seed=0).eval()
    prompt = torch.randint(5, 300, (2, 4), generator=torch.Generator().manual_seed(0))
    steps = []
    real_step = StaticDecoder._step
    monkeypatch.setattr(StaticDecoder, "_step", lambda self: steps.append(int(self.pos)) or real_step(self))
    once = bench_worker._graph_fn(model, prompt, 6, lambda: None)
    for _ in range(2):
        prefill_s, decode_s = once()
        assert prefill_s > 0 and decode_s > 0
    assert steps == [4, 5, 6, 7, 8, 9] * 2
