# Shared helpers: every output path is built here so the layout lives in one place.
import json
import os

RESULTS = config["results_dir"]
# The resolved config every stage reads (`--config`); written at parse time by the Snakefile
# only when its content changes. Rules put the config section they use in `params:` so a
# change to it reruns exactly the affected jobs.
CONFIG_FILE = os.path.join(RESULTS, "config.resolved.json")
TERNARYLM = "python -m ternarylm"
MAIN = config["main_corpus"]
VARIANTS = config["variants"]
SEEDS = config["seeds"]


def R(*parts):
    """Path under the results folder."""
    return os.path.join(RESULTS, *[str(p) for p in parts])


def write_resolved_config():
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    old = None
    if os.path.exists(CONFIG_FILE):
        with open(CONFIG_FILE) as f:
            old = f.read()
    if old != text:
        os.makedirs(RESULTS, exist_ok=True)
        tmp = CONFIG_FILE + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, CONFIG_FILE)


def model_dir(corpus, variant, seed):
    return R("pretrain", corpus, variant, f"seed{seed}")


def ckpt_dir(corpus, variant, seed):
    # outside the rule's outputs: Snakemake deletes outputs of a failed job, never this
    return R("ckpt", "pretrain", corpus, variant, f"seed{seed}")


def convergence_runs():
    """(corpus, variant, seed) of the F1 runs on corpora other than the main one."""
    conv = config["convergence"]
    return [
        (c, v, s)
        for c in config["convergence_corpora"]
        if c != MAIN
        for v in conv["variants"]
        for s in conv["seeds"]
    ]


def all_corpora():
    return sorted({MAIN, *config["convergence_corpora"]})


def log(*parts):
    return R("logs", *parts)


def bench(*parts):
    return R("benchmarks", *parts)


# GPU rules request one GPU unless the preset pins training to the CPU (smoke, realdata-mini)
GPU = 0 if config["train"]["device"] == "cpu" else 1
TRAIN_THREADS = config["train"]["threads"]
