"""Perplexity of our own model (ternarylm.model) on the token sets of each scoring scheme.

Schemes (all on results-realdata-mini/tokens/tinystories/val.bin = doc1 [SEP] doc2 [SEP] ... docN [SEP]):
  A  evaluate:        non-overlapping windows of 128 from token 0, targets tokens 1.., final partial window dropped
  B  lm_eval stream:  lm_eval's own get_rolling_token_windows on the stream with prefix [SEP] (windows shifted
                      by one vs A, every token scored incl. token 0 and the tail)
  B- stream w/o tail: B restricted to its full 128-token windows
  C  lm_eval per-doc: each doc alone, prefix [SEP], rolling windows of 128, doc tokens scored, its [SEP] not
  C+ per-doc + [SEP]: C but the closing [SEP] of each doc is scored too (context still the doc only)
Forms: fp32 twin; ternary twin trained forward (act_bits 8) and unpacked (act_bits 0).
Also checks that the export's HF tokenizer reproduces val.bin from val.txt.
"""

import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from ternarylm.data import read_docs
from ternarylm.model import load_model
from ternarylm.quant import BitLinear

torch.set_num_threads(1)
R = "results-realdata-mini"
SEP, L = 3, 128
toks = np.fromfile(f"{R}/tokens/tinystories/val.bin", dtype=np.uint16).astype(np.int64)
sep_idx = np.where(toks == SEP)[0]
docs, start = [], 0
for i in sep_idx:
    docs.append(toks[start:i].tolist())
    start = i + 1
assert start == len(toks)


def tokenizer_check(tok_json):
    from tokenizers import Tokenizer

    tk = Tokenizer.from_file(tok_json)
    texts = read_docs(f"{R}/data/tinystories/val.txt")
    per_doc = sum(tk.encode(t).ids == d for t, d in zip(texts, docs))
    stream = tk.encode(" ".join(f"{d} [SEP]" for d in texts)).ids
    return {"docs": len(texts), "docs_equal_valbin": per_doc, "stream_equal_valbin": stream == toks.tolist()}


@torch.no_grad()
def score(model, windows):
    """windows: list of (input ids, target ids) with len(target) <= len(input); targets align to the end.
    Returns (sum NLL, n tokens)."""
    nll, n = 0.0, 0
    # group by input length for batching
    by_len = {}
    for inp, tgt in windows:
        by_len.setdefault((len(inp), len(tgt)), []).append((inp, tgt))
    for (li, lt), group in by_len.items():
        for s in range(0, len(group), 64):
            g = group[s : s + 64]
            x = torch.tensor([w[0] for w in g])
            y = torch.tensor([w[1] for w in g])
            logits = model(x).float()[:, li - lt :]
            nll += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            n += y.numel()
    return nll, n


def rolling(token_list):
    """lm_eval's windows -> (input, targets): input = (context + continuation)[:-1], targets = continuation."""
    out = []
    for ctx, cont in map(make_disjoint_window, get_rolling_token_windows(token_list, SEP, L, 1)):
        full = (ctx + cont)[-(L + 1) :]
        out.append((full[:-1], cont))
    return out


def schemes(model):
    res = {}
    n = (len(toks) - 1) // L
    A = [(toks[i * L : i * L + L].tolist(), toks[i * L + 1 : i * L + L + 1].tolist()) for i in range(n)]
    B = rolling(toks.tolist())
    Bfull = [w for w in B if len(w[1]) == L]
    C = [w for d in docs for w in rolling(d)]
    Cp = [w for d in docs for w in rolling(d + [SEP])]
    for name, ws in (
        ("A_evaluate", A),
        ("B_stream", B),
        ("B_stream_no_tail", Bfull),
        ("C_per_doc", C),
        ("C_per_doc_plus_sep", Cp),
    ):
        nll, cnt = score(model, ws)
        res[name] = {"ppl": math.exp(nll / cnt), "nll_sum": nll, "tokens": cnt, "windows": len(ws)}
    return res


out = {"tokenizer": tokenizer_check(sys.argv[1]) if len(sys.argv) > 1 else None}
for variant in ("fp32", "ternary"):
    model = load_model(f"{R}/pretrain/tinystories/{variant}/seed0").eval()
    bl = [m for m in model.modules() if isinstance(m, BitLinear)]
    forms = [("trained", 8), ("unpacked_no_act_quant", 0)] if bl else [("trained", None)]
    for form, bits in forms:
        for m in bl:
            m.act_bits = bits
        t0 = time.time()
        out[f"{variant}/{form}"] = schemes(model)
        print(variant, form, json.dumps(out[f"{variant}/{form}"]), f"{time.time() - t0:.0f}s", flush=True)
json.dump(out, open("out/ppl_schemes.json", "w"), indent=2)
print(json.dumps(out["tokenizer"]))
