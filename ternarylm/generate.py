"""Text generation with a trained twin: PyTorch (KV cache, batched) or llama.cpp (GGUF).

Prompts are encoded as ``[SEP] + tokens`` -- in our token streams every document follows a
[SEP] -- and a sequence stops when the model emits [SEP] (end of document) or after
``--max-new-tokens``. Both backends share one sampler: greedy at temperature 0, otherwise
softmax(logits / T) restricted to the ``top_k`` best, from a seeded generator.

torch backend ``--model``: a model dir (model.safetensors + config.json; the QAT form) or a
packed ``.safetensors`` file from ``ternarylm export --format packed``.
llamacpp backend ``--model``: a ``.gguf`` file from ``ternarylm export --format gguf``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ternarylm.config import resolve
from ternarylm.identity import check_tokenizer
from ternarylm.io import UserError, require, write_json

if TYPE_CHECKING:
    import torch

log = logging.getLogger("ternarylm.generate")


def sample(logits: torch.Tensor, temperature: float = 0.0, top_k: int = 0, generator=None) -> torch.Tensor:
    """Next token ids (B,) from logits (B, V): argmax at temperature 0, else top-k sampling."""
    import torch

    logits = logits.float()
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


def _finish(out: list[list[int]], stop_id: int | None) -> list[list[int]]:
    """Cut every sequence after its first ``stop_id`` (kept)."""
    if stop_id is None:
        return out
    return [seq[: seq.index(stop_id) + 1] if stop_id in seq else seq for seq in out]


def generate_torch(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int = 0,
    seed: int = 0,
    stop_id: int | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """New token ids for each prompt. Prompts of equal length run as one batch.

    ``use_cache`` decodes incrementally with ``model.forward_cached``; without it every step
    re-runs the whole sequence (the obvious reference the KV cache is tested against).
    """
    import torch

    with torch.inference_mode():
        return _generate_torch(model, prompts, max_new_tokens, temperature, top_k, seed, stop_id, use_cache)


def _generate_torch(model, prompts, max_new_tokens, temperature, top_k, seed, stop_id, use_cache):
    import torch

    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    results: dict[int, list[int]] = {}
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        if not p:
            raise UserError("empty prompt")
        by_len.setdefault(len(p), []).append(i)
    for idxs in by_len.values():
        ids = torch.tensor([list(prompts[i]) for i in idxs], device=device)
        out = torch.empty(len(idxs), 0, dtype=torch.long, device=device)
        done = torch.zeros(len(idxs), dtype=torch.bool, device=device)
        if use_cache:
            logits, cache = model.forward_cached(ids)
        else:
            logits = model(ids)
        for _ in range(max_new_tokens):
            nxt = sample(logits[:, -1], temperature, top_k, gen)
            out = torch.cat((out, nxt[:, None]), dim=1)
            if stop_id is not None:
                done |= nxt == stop_id
                if bool(done.all()):
                    break
            if out.shape[1] == max_new_tokens:
                break
            if use_cache:
                logits, cache = model.forward_cached(nxt[:, None], cache)
            else:
                logits = model(torch.cat((ids, out), dim=1))
        for row, i in enumerate(idxs):
            results[i] = out[row].tolist()
    return _finish([results[i] for i in range(len(prompts))], stop_id)


def _llama_cpp():
    llama_cpp = require("llama_cpp")
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's load chatter
    return llama_cpp


class LlamaCpp:
    """A GGUF model in llama.cpp (through llama-cpp-python's C API), ``n_seq`` parallel sequences.

    Each sequence has its own KV cache and position, so a batch may mix prompt lengths.
    """

    def __init__(self, path: str | Path, n_ctx: int, n_seq: int = 1, threads: int | None = None) -> None:
        lc = self.lc = _llama_cpp()
        path = Path(path)
        if not path.exists():
            raise UserError(f"missing GGUF model: {path}")
        lc.llama_backend_init()
        mp = lc.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = lc.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise UserError(f"llama.cpp cannot load {path}")
        cp = lc.llama_context_default_params()
        cp.n_ctx = n_ctx * n_seq  # split evenly between the sequences
        cp.n_batch = cp.n_ubatch = max(n_ctx * n_seq, 64)
        cp.n_seq_max = n_seq
        cp.no_perf = True
        if threads:
            cp.n_threads = cp.n_threads_batch = threads
        self.ctx = lc.llama_init_from_model(self.model, cp)
        if not self.ctx:
            lc.llama_model_free(self.model)
            raise UserError(f"llama.cpp cannot create a context for {path}")
        self.n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        self.n_seq, self.capacity = n_seq, cp.n_batch
        self.batch = lc.llama_batch_init(self.capacity, 0, n_seq)
        self.pos = [0] * n_seq

    def reset(self) -> None:
        """Forget every sequence (clear the KV cache)."""
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)
        self.pos = [0] * self.n_seq

    def decode(self, seqs: Sequence[Sequence[int]], all_logits: bool = False) -> np.ndarray:
        """Append ``seqs[s]`` to sequence ``s``; logits (len(seqs), V) of each last token.

        With ``all_logits`` (one sequence only): logits of every token, (len(seqs[0]), V).
        """
        if len(seqs) > self.n_seq or sum(map(len, seqs)) > self.capacity:
            raise ValueError("batch larger than the context was made for")
        if all_logits and len(seqs) != 1:
            raise ValueError("all_logits needs exactly one sequence")
        b, k, wanted = self.batch, 0, []
        for s, toks in enumerate(seqs):
            for j, t in enumerate(toks):
                b.token[k], b.pos[k], b.n_seq_id[k] = int(t), self.pos[s] + j, 1
                b.seq_id[k][0] = s
                b.logits[k] = all_logits or j == len(toks) - 1
                if b.logits[k]:
                    wanted.append(k)
                k += 1
            self.pos[s] += len(toks)
        b.n_tokens = k
        rc = self.lc.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed ({rc})")
        return np.stack(
            [
                np.ctypeslib.as_array(self.lc.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,))
                for i in wanted
            ]
        ).copy()

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self.lc.llama_batch_free(self.batch)
            self.lc.llama_free(self.ctx)
            self.lc.llama_model_free(self.model)
            self.ctx = None

    def __enter__(self) -> LlamaCpp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def generate_llamacpp(
    llm: LlamaCpp,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int = 0,
    seed: int = 0,
    stop_id: int | None = None,
) -> list[list[int]]:
    """Like :func:`generate_torch` with llama.cpp; up to ``llm.n_seq`` prompts decode together."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    results: list[list[int]] = []
    for start in range(0, len(prompts), llm.n_seq):
        group = [list(p) for p in prompts[start : start + llm.n_seq]]
        if not all(group):
            raise UserError("empty prompt")
        llm.reset()
        logits = llm.decode(group)
        out: list[list[int]] = [[] for _ in group]
        done = [False] * len(group)
        for step in range(max_new_tokens):
            nxt = sample(torch.from_numpy(logits), temperature, top_k, gen).tolist()
            for o, t in zip(out, nxt, strict=True):
                o.append(t)
            done = [d or t == stop_id for d, t in zip(done, nxt, strict=True)]
            if all(done) or step + 1 == max_new_tokens:
                break
            logits = llm.decode([[t] for t in nxt])
        results.extend(out)
    return _finish(results, stop_id)


def load_torch_model(path: str | Path, dtype: str = "fp32", packed_mode: str = "int8") -> torch.nn.Module:
    """A model dir (QAT/fp32 checkpoint) or a packed .safetensors file, on CPU, in eval mode."""
    import torch
    from safetensors import SafetensorError

    from ternarylm.model import load_model, require_causal
    from ternarylm.packed import load_packed

    path = Path(path)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    if not path.is_file():
        require_causal(path, "generate text")
        return load_model(path).to(torch_dtype)
    try:
        return load_packed(path, mode=packed_mode, dtype=torch_dtype)
    except (SafetensorError, OSError, RuntimeError, KeyError, ValueError) as e:
        raise UserError(f"{path}: not a readable packed model ({str(e).strip()[:200]})") from e


def load_wordpiece(path: str | Path):
    """The WordPiece ``tokenizers.Tokenizer`` with a WordPiece decoder (for readable output)."""
    from tokenizers import decoders

    from ternarylm.tokenizer import load_tokenizer

    tok = load_tokenizer(path)
    if tok.decoder is None:
        tok.decoder = decoders.WordPiece()
    return tok


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"  # argparse names the type in its messages
    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):  # also NaN
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("torch", "llamacpp"), default="torch")
    p.add_argument("--model", required=True, help="torch: model dir or packed .safetensors; llamacpp: .gguf")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json")
    p.add_argument(
        "--prompt", action="append", help="prompt text (repeat for several); default 'Once upon a time'"
    )
    p.add_argument(
        "--num-samples",
        type=_int_at_least(1),
        default=1,
        help="continuations per prompt (one batch in torch)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=_int_at_least(1),
        help="at least 1; default: config generate.max_new_tokens",
    )
    p.add_argument("--temperature", type=_non_negative_float, default=0.0, help="0 = greedy")
    p.add_argument("--top-k", type=_int_at_least(0), default=0, help="0 = no top-k filter")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch/llama.cpp default)")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="torch compute dtype")
    p.add_argument("--no-cache", action="store_true", help="torch: no KV cache (re-run the whole sequence)")
    p.add_argument("--out", help="also write prompts, ids, texts and timing as JSON here")


def _check_model_fits(args, vocab: int, seq_len: int, tok, prompts: list[list[int]], max_new: int) -> None:
    if tok.get_vocab_size() > vocab:  # ids past the model's vocab: IndexError or garbled text
        raise UserError(
            f"{args.tokenizer}: vocab of {tok.get_vocab_size()} does not match the model's {vocab} ({args.model})"
        )
    longest = max(len(p) for p in prompts) + max_new
    if longest > seq_len:
        log.warning(
            "prompt + --max-new-tokens = %d tokens is longer than the %d the model was trained on: "
            "expect degraded text past position %d",
            longest,
            seq_len,
            seq_len,
        )


def run(args: argparse.Namespace, config: dict) -> None:
    tok = load_wordpiece(args.tokenizer)
    from ternarylm.tokenizer import SPECIALS

    specials = {tok.token_to_id(t) for t in SPECIALS}
    sep = tok.token_to_id("[SEP]")
    if sep is None:
        raise UserError(f"{args.tokenizer}: no [SEP] token")
    max_new = args.max_new_tokens
    if max_new is None:  # never `or`: an explicit value always wins
        max_new = int(resolve(config)["generate"]["max_new_tokens"])
    texts = args.prompt or ["Once upon a time"]
    prompts = [[sep, *tok.encode(t).ids] for t in texts for _ in range(args.num_samples)]
    kw: dict[str, Any] = dict(temperature=args.temperature, top_k=args.top_k, seed=args.seed, stop_id=sep)

    import torch  # the shared sampler; imported here so its import time is not counted below

    t0 = time.perf_counter()
    run_fn: Callable[[], list[list[int]]]
    if args.backend == "torch":
        if args.threads:
            torch.set_num_threads(args.threads)
        model = load_torch_model(args.model, args.dtype)
        if Path(args.model).is_dir():
            check_tokenizer(args.model, args.tokenizer, model.cfg.vocab_size)
        _check_model_fits(args, model.cfg.vocab_size, model.cfg.seq_len, tok, prompts, max_new)
        run_fn = lambda: generate_torch(model, prompts, max_new, use_cache=not args.no_cache, **kw)  # noqa: E731
    else:
        longest = max(len(p) for p in prompts) + max_new
        llm = LlamaCpp(args.model, n_ctx=longest, n_seq=min(len(prompts), 16), threads=args.threads)
        n_ctx_train = llm.lc.llama_model_n_ctx_train(llm.model)
        _check_model_fits(args, llm.n_vocab, n_ctx_train, tok, prompts, max_new)
        run_fn = lambda: generate_llamacpp(llm, prompts, max_new, **kw)  # noqa: E731
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    outs = run_fn()
    gen_s = time.perf_counter() - t0
    n_new = sum(len(o) for o in outs)
    records = []
    for prompt_text, ids in zip([t for t in texts for _ in range(args.num_samples)], outs, strict=True):
        text = tok.decode([i for i in ids if i not in specials])
        print(f"{prompt_text} ->{text}" if text.startswith(" ") else f"{prompt_text} -> {text}")
        records.append({"prompt": prompt_text, "ids": ids, "text": text})
    log.info(
        "%d new tokens in %.2f s (%.1f tokens/s, load %.2f s)", n_new, gen_s, n_new / max(gen_s, 1e-9), load_s
    )
    if args.out:
        write_json(
            args.out,
            {
                "backend": args.backend,
                "model": str(args.model),
                "load_s": load_s,
                "generate_s": gen_s,
                "samples": records,
            },
        )
