"""TransformerLM: the ternary and FP32 twins (decoder-only, RMSNorm, RoPE, SwiGLU, SDPA).

The twins share every line of code; ``ModelConfig.linear`` picks ``BitLinear`` (ternary) or
``nn.Linear`` (fp32) for the projections named in ``quantize``. Built under the same seed they
have bit-identical initial latent weights. ``VARIANTS`` maps each pretraining variant to its model
settings: the twins, and the ``fp32-noncausal`` control (``causal=False``: the FP32 twin without
the causal mask, as in the authors' notebook baseline, so position t sees token t+1, its target).

llama.cpp compatibility by construction (see export.py): RoPE rotates consecutive pairs
(2i, 2i+1) like llama.cpp's ``llama`` architecture, there are no biases, the embedding and the
untied LM head stay full precision.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ternarylm.layout import NONCAUSAL
from ternarylm.quant import BitLinear, shared_input

PROJECTIONS = ("q", "k", "v", "o", "gate", "up", "down")
# pretraining variant -> ModelConfig fields it sets (train.py's --variant choices come from here)
VARIANTS: dict[str, dict[str, Any]] = {
    "ternary": {"linear": "ternary"},
    "fp32": {"linear": "fp32"},
    NONCAUSAL: {"linear": "fp32", "causal": False},  # a control, never deployed
}


@dataclass
class ModelConfig:
    vocab_size: int = 30522
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    ffn_hidden: int = 2048  # SwiGLU hidden; a multiple of 256 so llama.cpp's TQ2_0 blocks fit
    seq_len: int = 128
    dropout: float = 0.05
    linear: str = "ternary"  # ternary | fp32
    # False only for the fp32-noncausal control: every position attends to every other one
    # (config.json files written before this field load as causal)
    causal: bool = True
    act_bits: int = 8
    rope_base: float = 10000.0
    norm_eps: float = 1e-6
    quantize: list[str] = field(default_factory=lambda: list(PROJECTIONS))
    init_std: float = 0.02
    # the output layer computes this many extra zero rows up to a multiple (GPU GEMMs want
    # multiples of 64; a learned WordPiece vocab has any size); they never reach a softmax
    vocab_multiple: int = 64

    def __post_init__(self) -> None:
        if self.linear not in ("ternary", "fp32"):
            raise ValueError(f"linear must be 'ternary' or 'fp32', got {self.linear!r}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError("d_model must split into n_heads heads of even size")
        unknown = set(self.quantize) - set(PROJECTIONS)
        if unknown:
            raise ValueError(f"unknown projections in quantize: {sorted(unknown)}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def padded_vocab(self) -> int:
        m = max(int(self.vocab_multiple), 1)
        return -(-self.vocab_size // m) * m

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def variant_config(model_cfg: dict[str, Any], variant: str, vocab_size: int) -> ModelConfig:
    """The model a pretraining ``variant`` trains, from the config's ``model`` section."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return ModelConfig.from_dict({**model_cfg, **VARIANTS[variant], "vocab_size": vocab_size})


def make_linear(cfg: ModelConfig, name: str, d_in: int, d_out: int) -> nn.Linear:
    if cfg.linear == "ternary" and name in cfg.quantize:
        return BitLinear(d_in, d_out, act_bits=cfg.act_bits)
    return nn.Linear(d_in, d_out, bias=False)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).type_as(x)


def rope_tables(head_dim: int, length: int, base: float, device: torch.device | None = None):
    """cos/sin tables of shape (length, head_dim // 2)."""
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    ang = torch.outer(torch.arange(length, dtype=torch.float32, device=device), inv)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs (x[2i], x[2i+1]); x is (B, H, T, D), cos/sin (T, D/2)."""
    xf = x.float().unflatten(-1, (-1, 2))
    x0, x1 = xf[..., 0], xf[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2).type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads, self.head_dim, self.dropout = cfg.n_heads, cfg.head_dim, cfg.dropout
        self.causal = cfg.causal
        self.q = make_linear(cfg, "q", d, d)
        self.k = make_linear(cfg, "k", d, d)
        self.v = make_linear(cfg, "v", d, d)
        self.o = make_linear(cfg, "o", d, d)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Causal attention (or full, ``cfg.causal=False``); with ``kv_cache`` (past k, v) the new
        tokens attend to the past too (causal models only: generation refuses the others)."""
        q, k, v = shared_input(x, self.q, self.k, self.v)
        q = apply_rope(self.heads(q), cos, sin)
        k = apply_rope(self.heads(k), cos, sin)
        v = self.heads(v)
        if kv_cache is not None:
            k = torch.cat((kv_cache[0], k), dim=2)
            v = torch.cat((kv_cache[1], v), dim=2)
        t_new, t_all = q.shape[2], k.shape[2]
        if kv_cache is None or t_new == t_all:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0
            )
        else:
            mask = torch.ones(t_new, t_all, dtype=torch.bool, device=x.device).tril(t_all - t_new)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o(y.transpose(1, 2).flatten(-2)), (k, v)


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate = make_linear(cfg, "gate", cfg.d_model, cfg.ffn_hidden)
        self.up = make_linear(cfg, "up", cfg.d_model, cfg.ffn_hidden)
        self.down = make_linear(cfg, "down", cfg.ffn_hidden, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = shared_input(x, self.gate, self.up)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cos, sin, kv_cache=None):
        a, kv = self.attn(self.attn_norm(x), cos, sin, kv_cache)
        x = x + self.drop(a)
        x = x + self.drop(self.mlp(self.mlp_norm(x)))
        return x, kv


class TransformerLM(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg.head_dim, cfg.seq_len, cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)
        # GPT-2 style scaled init of the residual output projections
        for name, p in self.named_parameters():
            if name.endswith(("attn.o.weight", "mlp.down.weight")):
                nn.init.normal_(p, std=cfg.init_std / math.sqrt(2 * cfg.n_layers))
        self._pad_head()

    def _pad_head(self) -> None:
        # zero rows appended after the init, so the random stream (and every real weight) is the
        # unpadded model's; forward slices them off, so their gradient is 0 and they stay 0
        pad = self.cfg.padded_vocab - self.cfg.vocab_size
        if pad <= 0:
            return
        w = self.head.weight
        self.head.weight = nn.Parameter(torch.cat((w.detach(), w.new_zeros(pad, w.shape[1]))))
        self.head.out_features = self.cfg.padded_vocab
        # checkpoints, exports and packed files keep the real vocab: slice on save, pad on load
        self.register_state_dict_post_hook(_unpad_head_state)
        self.register_load_state_dict_pre_hook(_pad_head_state)

    def _init(self, m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.cfg.init_std)

    def rope(self, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        end = start + length
        if end > self.rope_cos.shape[0]:
            cos, sin = rope_tables(self.cfg.head_dim, end, self.cfg.rope_base, self.rope_cos.device)
            return cos[start:end], sin[start:end]
        return self.rope_cos[start:end], self.rope_sin[start:end]

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final RMS-normed hidden states (B, T, d) — used by fine-tuning heads."""
        cos, sin = self.rope(0, idx.shape[1])
        x = self.drop(self.tok_emb(idx))
        for layer in self.layers:
            x, _ = layer(x, cos, sin)
        return self.norm(x)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Output layer over the padded vocab, padding columns dropped (they never reach a softmax)."""
        return self.head(h)[..., : self.cfg.vocab_size]

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids ``idx`` (B, T)."""
        return self.logits(self.hidden(idx))

    def loss(self, idx: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        """Model and loss as one function, so torch.compile puts the CE over the logits in its graph."""
        return lm_loss(self(idx), targets, label_smoothing)

    @torch.no_grad()
    def forward_cached(self, idx: torch.Tensor, cache: list | None = None) -> tuple[torch.Tensor, list]:
        """Incremental decoding: logits for ``idx`` given the per-layer (k, v) ``cache`` of the prefix."""
        if not self.cfg.causal:  # a prefix's states would change with every new token
            raise ValueError("incremental decoding needs a causal model")
        past = 0 if not cache else cache[0][0].shape[2]
        cos, sin = self.rope(past, idx.shape[1])
        x = self.tok_emb(idx)
        new_cache = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, cos, sin, cache[i] if cache else None)
            new_cache.append(kv)
        return self.logits(self.norm(x)), new_cache

    def num_params(self) -> int:
        """Parameters of the model as saved (the head's zero padding rows not counted)."""
        pad = (self.cfg.padded_vocab - self.cfg.vocab_size) * self.cfg.d_model
        return sum(p.numel() for p in self.parameters()) - pad


def _unpad_head_state(module: TransformerLM, state: dict, prefix: str, local_metadata: dict) -> None:
    key = prefix + "head.weight"
    if key in state:
        state[key] = state[key][: module.cfg.vocab_size]


def _pad_head_state(module: TransformerLM, state: dict, prefix: str, *args: Any) -> None:
    key, cfg = prefix + "head.weight", module.cfg
    w = state.get(key)
    if w is not None and w.shape[0] == cfg.vocab_size < cfg.padded_vocab:
        state[key] = torch.cat((w, w.new_zeros(cfg.padded_vocab - cfg.vocab_size, w.shape[1])))


def build_model(cfg: ModelConfig | dict[str, Any], seed: int | None = None) -> TransformerLM:
    """Build a twin; with ``seed`` the initial weights depend only on the seed, not the variant."""
    if isinstance(cfg, dict):
        cfg = ModelConfig.from_dict(cfg)
    if seed is not None:
        torch.manual_seed(seed)
    return TransformerLM(cfg)


# every module of a block in the other runtimes' naming: (llama.cpp GGUF tensor, HF Llama module)
BLOCK_NAMES = {
    "attn_norm": ("attn_norm", "input_layernorm"),
    "attn.q": ("attn_q", "self_attn.q_proj"),
    "attn.k": ("attn_k", "self_attn.k_proj"),
    "attn.v": ("attn_v", "self_attn.v_proj"),
    "attn.o": ("attn_output", "self_attn.o_proj"),
    "mlp_norm": ("ffn_norm", "post_attention_layernorm"),
    "mlp.gate": ("ffn_gate", "mlp.gate_proj"),
    "mlp.up": ("ffn_up", "mlp.up_proj"),
    "mlp.down": ("ffn_down", "mlp.down_proj"),
}


def rename_module(name: str, top: dict[str, str], in_block: dict[str, str], block: str) -> str:
    """Our module name (``layers.3.mlp.up``) in another runtime's naming: ``top`` maps the modules
    outside the blocks, ``in_block`` those inside one, ``block`` formats ``{i}`` and ``{name}``."""
    if name in top:
        return top[name]
    parts = name.split(".")
    inner = ".".join(parts[2:])
    if parts[0] == "layers" and inner in in_block:
        return block.format(i=parts[1], name=in_block[inner])
    raise ValueError(f"no name for module {name!r} in this format")


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), label_smoothing=label_smoothing)


def save_model(model: TransformerLM, out_dir, extra: dict[str, Any] | None = None) -> None:
    """Write ``model.safetensors`` + ``config.json`` (model config and ``extra``) atomically."""
    from pathlib import Path

    from safetensors.torch import save_file

    from ternarylm.identity import RECORD, sha256_file
    from ternarylm.io import atomic_path, write_json
    from ternarylm.provenance import provenance

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out_dir / "model.safetensors") as tmp:
        save_file(state, str(tmp))
        weights_sha = sha256_file(tmp)
    meta = {"model": model.cfg.to_dict(), **(extra or {})}
    # what the folder belongs to: every stage checks its weights and its tokenizer against this
    meta[RECORD] = {"vocab_size": model.cfg.vocab_size, **meta.get(RECORD, {}), "weights_sha256": weights_sha}
    # the device the weights were trained on (they are saved from it), torch's thread setting
    meta["provenance"] = provenance(device=next(model.parameters()).device)
    write_json(out_dir / "config.json", meta)


def load_model(model_dir, device: str | torch.device = "cpu", lean: bool = False) -> TransformerLM:
    """Load a twin written by :func:`save_model`; a broken file is one line naming it.

    ``lean``: build on the meta device and assign the file's tensors, so the weights are held once
    (the benchmark's memory rows). The default builds (and randomly initialises) the model first,
    which draws from the global RNG: seeded fine-tuning runs depend on that draw, so it stays."""
    from pathlib import Path

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ternarylm.identity import check_weights
    from ternarylm.io import UserError, read_json

    model_dir = Path(model_dir)
    weights = model_dir / "model.safetensors"
    if not model_dir.is_dir():
        raise UserError(f"not a model folder: {model_dir} (model.safetensors + config.json)")
    if not weights.is_file():
        raise UserError(f"missing model weights: {weights}")
    check_weights(model_dir)
    try:
        cfg = ModelConfig.from_dict(read_json(model_dir / "config.json")["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{model_dir / 'config.json'}: not a model config ({e})") from e
    with torch.device("meta") if lean else contextlib.nullcontext():
        model = TransformerLM(cfg)
    try:
        state = load_file(str(weights))
        model.load_state_dict(state, assign=lean)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{weights}: unreadable or truncated model weights ({first[:200]})") from e
    bad = [k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:  # e.g. a flipped exponent bit: every output would be NaN
        raise UserError(f"{weights}: non-finite weights in {', '.join(bad[:3])} (the file is corrupt)")
    if lean:  # the RoPE tables are buffers, not in the file: computed for real instead of on meta
        model.rope_cos, model.rope_sin = rope_tables(cfg.head_dim, cfg.seq_len, cfg.rope_base)
    return model.to(device).eval()


def require_causal(model_dir, use: str) -> None:
    """Refuse, in one line, to ``use`` (generate, export, ...) a model saved with ``causal: false``.

    Such a model (the fp32-noncausal control) sees the token it predicts: it cannot generate text
    and no runtime (llama.cpp, transformers) would run it as trained. A folder without a readable
    config.json passes; the loader that follows names that problem.
    """
    from pathlib import Path

    from ternarylm.io import UserError, read_json

    path = Path(model_dir) / "config.json"
    meta = read_json(path) if path.is_file() else {}
    model_cfg = meta.get("model") if isinstance(meta, dict) else None
    if isinstance(model_cfg, dict) and model_cfg.get("causal", True) is False:
        raise UserError(
            f"{model_dir}: a non-causal model (the {NONCAUSAL} control sees its next token) "
            f"cannot be used to {use}; only the causal twins can"
        )
