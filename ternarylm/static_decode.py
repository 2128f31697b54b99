"""Greedy decoding with a preallocated KV cache, so one decode step can be a CUDA graph.

``TransformerLM.forward_cached`` grows its cache with ``torch.cat``: every step has new shapes and
each of its ~15 kernels per layer is launched from Python. A 132M model on a GPU then measures
launch overhead, not the weights (the paper's 8-9 ms/token is in that regime). :class:`StaticDecoder`
keeps K/V in fixed (batch, heads, max_len, head_dim) buffers, writes the new position with
``index_copy_`` and masks the unwritten tail, and takes its next token from its own logits, so a
step has fixed shapes and no host round trip: :meth:`capture` records it once as a CUDA graph and
each token is one ``replay``. The bench uses it for every torch row with a KV cache on CUDA (fp32,
bf16, packed, w2 alike), so latencies compare like with like.

The step repeats ``model.Attention.forward``'s arithmetic (shared-input q/k/v, RoPE, SDPA, the
output projection) on the static buffers; tests/test_static_decode.py checks it against
``forward_cached`` on CPU, where the step runs eagerly (graph capture is CUDA-only and was NOT run
here: no GPU was lent).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ternarylm.model import TransformerLM, apply_rope, rope_tables
from ternarylm.quant import shared_input


class StaticDecoder:
    """Greedy decode of ``batch`` sequences up to ``max_len`` tokens with fixed-shape steps."""

    def __init__(self, model: TransformerLM, batch: int, max_len: int, dtype: torch.dtype) -> None:
        cfg, device = model.cfg, model.tok_emb.weight.device
        self.model, self.max_len = model, max_len
        shape = (batch, cfg.n_heads, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in model.layers]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in model.layers]
        self.cos, self.sin = rope_tables(cfg.head_dim, max_len, cfg.rope_base, device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)  # tokens in the cache
        self.tok = torch.zeros(batch, 1, dtype=torch.long, device=device)  # the next input token
        self.logits: torch.Tensor | None = None
        self.graph = None

    @torch.inference_mode()
    def prefill(self, idx: torch.Tensor) -> torch.Tensor:
        """Run the prompt (eagerly, ``forward_cached``), fill the cache; returns the last logits."""
        t = idx.shape[1]
        if t >= self.max_len:
            raise ValueError(f"prompt of {t} tokens leaves no room in max_len={self.max_len}")
        logits, cache = self.model.forward_cached(idx)
        for i, (k, v) in enumerate(cache):
            self.k[i][:, :, :t].copy_(k)
            self.v[i][:, :, :t].copy_(v)
        self.pos.fill_(t)
        self.tok.copy_(logits[:, -1:].argmax(-1))
        return logits[:, -1]

    def _step(self) -> torch.Tensor:
        m = self.model
        cos, sin = self.cos.index_select(0, self.pos), self.sin.index_select(0, self.pos)
        # (1, 1, 1, max_len): the new token sees every cached position and itself
        visible = (torch.arange(self.max_len, device=self.pos.device) <= self.pos)[None, None, None]
        x = m.tok_emb(self.tok)
        for i, layer in enumerate(m.layers):
            a = layer.attn
            q, k, v = shared_input(layer.attn_norm(x), a.q, a.k, a.v)
            q = apply_rope(a.heads(q), cos, sin)
            self.k[i].index_copy_(2, self.pos, apply_rope(a.heads(k), cos, sin).to(self.k[i].dtype))
            self.v[i].index_copy_(2, self.pos, a.heads(v).to(self.v[i].dtype))
            y = F.scaled_dot_product_attention(q, self.k[i], self.v[i], attn_mask=visible)
            x = x + a.o(y.transpose(1, 2).flatten(-2))
            x = x + layer.mlp(layer.mlp_norm(x))
        logits = m.logits(m.norm(x))[:, -1]
        self.tok.copy_(logits.argmax(-1, keepdim=True))
        self.pos.add_(1)
        return logits

    @torch.inference_mode()
    def capture(self, warmup: int = 2) -> None:
        """Record one step as a CUDA graph (after ``warmup`` eager steps on a side stream, as
        torch.cuda.graphs requires); call :meth:`prefill` again afterwards, the cache is scratch."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                self._step()
                self.pos.sub_(1)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):  # recorded, not run: pos and the cache stay as they were
            self.logits = self._step()

    @torch.inference_mode()
    def step(self) -> torch.Tensor:
        """Decode one token (the argmax of the previous logits); returns its logits (batch, vocab)."""
        if self.graph is None:
            return self._step()
        self.graph.replay()
        return self.logits
