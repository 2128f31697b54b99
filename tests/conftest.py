"""Shared fixtures: one smoke-DAG run per test session (used by the slow tests), and the tokenizer and
tiny twins of the deploy and bench tests. Plain helpers and constants are in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import DEPLOY_TINY, SENTENCES, copy_workflow, snakemake

from ternarylm.model import build_model, lm_loss, save_model
from ternarylm.tokenizer import SEP_ID, train_tokenizer


def _import_triton_for_the_interpreter() -> None:
    """test_w2.py runs the Triton kernels on CPU with TRITON_INTERPRET=1, which triton must see when it
    is first imported: other test modules import it at collection (torch's inductor), and a triton
    imported without the flag leaves the interpreter unable to run triton.language's own jit
    functions ("Cannot call @triton.jit'd outside of the scope of a kernel", seen with test_fastpath
    collected first). So it is imported here, first, under the flag; the flag itself is restored so
    nothing else (bench workers, snakemake jobs) inherits it."""
    prior = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        import triton.language  # noqa: F401
    except ImportError:  # no triton (the core install): test_w2 skips with its reason
        pass
    finally:
        if prior is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = prior


_import_triton_for_the_interpreter()


torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_workdir(tmp_path_factory) -> Path:
    """A copy of the workflow in which the whole smoke DAG has run (once per session)."""
    wd = copy_workflow(tmp_path_factory.mktemp("smoke"))
    # 3-5 min alone; the timeout only guards against a hang (shared CI cores can make it 4x slower)
    snakemake(wd, "--cores", "2", "--configfile", "workflow/presets/smoke.yaml", check=True, timeout=3000)
    return wd


@pytest.fixture(scope="session")
def smoke_run(smoke_workdir: Path) -> Path:
    """The results folder of the smoke DAG run."""
    return smoke_workdir / "results"


# the deploy and bench tests' tokenizer and tiny twins (built once per test module)
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
    model = build_model({**DEPLOY_TINY, "linear": "ternary"}, seed=0)
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
    save_model(build_model({**DEPLOY_TINY, "linear": "fp32"}, seed=0), root / "fp32")
    return {"ternary": root / "ternary", "fp32": root / "fp32"}
