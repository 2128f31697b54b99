"""PPL of the HF exports themselves (transformers AutoModelForCausalLM) on evaluate's windows (scheme A)."""

import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

torch.set_num_threads(1)
R = "results-realdata-mini"
L = 128
toks = np.fromfile(f"{R}/tokens/tinystories/val.bin", dtype=np.uint16).astype(np.int64)
n = (len(toks) - 1) // L
out = {}
for d in sys.argv[1:]:
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    nll, cnt = 0.0, 0
    with torch.no_grad():
        for s in range(0, n, 32):
            t = torch.from_numpy(np.stack([toks[i * L : i * L + L + 1] for i in range(s, min(n, s + 32))]))
            lg = m(t[:, :-1]).logits.float()
            nll += F.cross_entropy(lg.flatten(0, 1), t[:, 1:].flatten(), reduction="sum").item()
            cnt += t[:, 1:].numel()
    out[d] = {"ppl": math.exp(nll / cnt), "tokens": cnt}
    print(d, out[d], flush=True)
json.dump(out, open("out/hf_evaluate_windows.json", "w"), indent=2)
