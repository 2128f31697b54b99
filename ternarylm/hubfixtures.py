"""A tiny offline copy of every HF hub repo the paper preset reads, laid out file for file like the hub.

    python -m ternarylm.hubfixtures .test/hub        # then hf_mirror: .test/hub (paper-rehearsal)

What makes it a test of the real path: ``datasets.load_dataset`` reads these folders with the same
layout detection it applies to the hub repos (ternarylm.hub lists them) -- parquet shards under
``data/``, the parquet conversion's ``default/<split>/0000.parquet``, GLUE's per-config folders
declared in its README's YAML -- and the tokenizer is a bert-base-uncased-layout ``tokenizer.json``
([PAD]=0, [unused0..98], [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103). The text is generated
(ternarylm.synthetic), never copied; WritingPrompts carries the dataset's Reddit/PTB artifacts so
the normalisation runs. ``script_only`` writes the hub's main branch of tiny_shakespeare (a loading
script and no data), which must fail in one line.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from ternarylm.synthetic import synthetic_corpus, synthetic_pairs

SIZES = {"stories": 600, "val_stories": 60, "prompts": 120, "val_prompts": 20, "glue": 96, "glue_dev": 32}
_GLUE_README = """---
configs:
{configs}
---
# GLUE (offline test copy: generated sentences, same layout as nyu-mll/glue)
"""


def _parquet(path: Path, columns: dict[str, list]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def _wp_artifacts(story: str, rng: random.Random) -> tuple[str, str]:
    """A (prompt, story) pair written the way WritingPrompts stores text."""
    first = story.split(". ")[0]
    prompt = f"[ WP ] {first.capitalize()} , but it is n't what it seems ."
    body = story.replace(". ", " . <newline> ").replace(" named ", " named `` ", 1)
    return prompt, body.replace(" liked ", " '' liked ", 1) + (" It 's over ." if rng.random() < 0.5 else "")


def _shakespeare_text(n_speeches: int) -> str:
    rng = random.Random(7)
    names = ["FIRST CITIZEN", "MENENIUS", "ROMEO", "JULIET"]
    lines = synthetic_corpus(n_speeches, seed=7)
    return "".join(
        f"{rng.choice(names)}:\n{line.split('. ')[0]}.\n{line.split('. ')[1]}.\n\n" for line in lines
    )


def write_corpora(root: Path, sizes: dict[str, int]) -> list[str]:
    stories = synthetic_corpus(sizes["stories"] + sizes["val_stories"], seed=11)
    ts = root / "roneneldan" / "TinyStories"
    _parquet(ts / "data" / "train-00000-of-00001.parquet", {"text": stories[: sizes["stories"]] + [""]})
    _parquet(ts / "data" / "validation-00000-of-00001.parquet", {"text": stories[sizes["stories"] :]})
    (ts / "README.md").write_text("# TinyStories (offline test copy)\n")
    rng = random.Random(5)
    pairs = [_wp_artifacts(s, rng) for s in synthetic_corpus(sizes["prompts"] + sizes["val_prompts"], 13)]
    wp = root / "euclaise" / "writingprompts"
    for split, part in (("train", pairs[: sizes["prompts"]]), ("validation", pairs[sizes["prompts"] :])):
        cols = {"prompt": [p for p, _ in part], "story": [s for _, s in part]}
        _parquet(wp / "data" / f"{split}-00000-of-00001.parquet", cols)
    (wp / "README.md").write_text("# WritingPrompts (offline test copy)\n")
    # the parquet conversion of the loading script's output: one row per split, the 90/5/5 cut
    text = _shakespeare_text(max(40, sizes["stories"] // 2))
    i = int(len(text) * 0.9)
    j = i + int((len(text) - i) * 0.5)
    sh = root / "karpathy" / "tiny_shakespeare" / "default"
    for split, part in (("train", text[:i]), ("validation", text[i:j]), ("test", text[j:])):
        _parquet(sh / split / "0000.parquet", {"text": [part]})
    return stories + [f"{p}\n{s}" for p, s in pairs] + [text]


def _glue_rows(task: str, n: int, seed: int) -> dict[str, list]:
    if task == "mrpc":
        pairs = synthetic_pairs(n, seed)
        return {
            "sentence1": [a for a, _, _ in pairs],
            "sentence2": [b for _, b, _ in pairs],
            "label": [y for _, _, y in pairs],
            "idx": list(range(n)),
        }
    rng = random.Random(seed)
    sentences, labels = [], []
    for story in synthetic_corpus(n, seed):
        words = story.split(". ")[1].split()
        label = int(rng.random() < 0.6)
        if task == "sst2":  # sentiment: a positive or a negative ending
            words += ["and", "loved", "it"] if label else ["and", "hated", "it"]
        elif not label:  # cola: an ungrammatical word order
            words = words[::-1]
        sentences.append(" ".join(words))
        labels.append(label)
    return {"sentence": sentences, "label": labels, "idx": list(range(n))}


def write_glue(root: Path, sizes: dict[str, int]) -> list[str]:
    glue, texts, configs = root / "nyu-mll" / "glue", [], []
    for k, task in enumerate(("mrpc", "sst2", "cola")):
        for split, n in (
            ("train", sizes["glue"]),
            ("validation", sizes["glue_dev"]),
            ("test", sizes["glue_dev"]),
        ):
            rows = _glue_rows(task, n, seed=100 * k + len(split))
            if split == "test":
                rows["label"] = [-1] * n  # GLUE hides its test labels
            _parquet(glue / task / f"{split}-00000-of-00001.parquet", rows)
            texts += rows.get("sentence", []) + rows.get("sentence1", []) + rows.get("sentence2", [])
        files = "\n".join(f"  - split: {s}\n    path: {task}/{s}-*" for s in ("train", "validation", "test"))
        configs.append(f"- config_name: {task}\n  data_files:\n{files}")
    (glue / "README.md").write_text(_GLUE_README.format(configs="\n".join(configs)))
    return texts


def write_bert_tokenizer(root: Path, texts: list[str], n_pieces: int = 600) -> Path:
    """bert-base-uncased's layout: specials at BERT's ids, 99 [unused] slots, then the pieces."""
    from tokenizers import AddedToken

    from ternarylm.tokenizer import SPECIALS, _bert_tokenizer, count_words, learn_vocab

    pieces = [p for p in learn_vocab(count_words(texts), n_pieces + len(SPECIALS)) if p not in SPECIALS]
    order = ["[PAD]", *[f"[unused{i}]" for i in range(99)], "[UNK]", "[CLS]", "[SEP]", "[MASK]", *pieces]
    tok = _bert_tokenizer({p: i for i, p in enumerate(order)}, True)
    tok.add_special_tokens([AddedToken(s, special=True) for s in SPECIALS])
    out = root / "bert-base-uncased"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(tok.to_str())
    (out / "vocab.txt").write_text("".join(f"{p}\n" for p in order))
    return out / "tokenizer.json"


def write_local(data_dir: Path, n: int = 32) -> None:
    """The MSR-labeled MRPC test file the hf source reads locally (GLUE hides its test labels)."""
    rows = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    rows += [f"{y}\t{i}\t{i + 1}\t{a}\t{b}" for i, (a, b, y) in enumerate(synthetic_pairs(n, 999))]
    (data_dir / "mrpc").mkdir(parents=True, exist_ok=True)
    (data_dir / "mrpc" / "test_labeled.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")


def script_only(root: Path) -> Path:
    """karpathy/tiny_shakespeare's main branch: a loading script and no data files."""
    repo = root / "karpathy" / "tiny_shakespeare"
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "tiny_shakespeare.py").write_text("import datasets  # a loading script (never run)\n")
    (repo / "README.md").write_text("# tiny_shakespeare (loading-script layout)\n")
    return repo


def write_mirror(root: str | Path, sizes: dict[str, int] | None = None) -> Path:
    """Every repo of ternarylm.hub under ``root`` (the ``hf_mirror`` folder), plus ``root/local``
    (the ``data_dir`` with MRPC's labeled test file)."""
    root, sizes = Path(root), {**SIZES, **(sizes or {})}
    texts = write_corpora(root, sizes) + write_glue(root, sizes)
    write_bert_tokenizer(root, texts)
    write_local(root / "local")
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the hf_mirror folder to write")
    print(write_mirror(p.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
