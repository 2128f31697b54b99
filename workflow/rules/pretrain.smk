# pretrain: the twins x seeds on the main corpus; convergence: F1's runs on the other corpora.
# Checkpoints go to ckpt_dir() (not an output), so a failed or preempted job resumes on rerun.


def pretrain_cmd(epochs=""):
    return (
        "{TERNARYLM} pretrain --config {CONFIG_FILE} --corpus {wildcards.corpus}"
        " --variant {wildcards.variant} --seed {wildcards.seed}"
        " --train {input.train} --val {input.val} --tokenizer {input.tokenizer}"
        " --out-dir $(dirname {output.model}) --ckpt-dir {params.ckpt} --threads {threads}"
        + epochs
        + " >> {log} 2>&1"
    )


PRETRAIN_INPUT = dict(
    train=R("tokens", "{corpus}", "train.bin"),
    val=R("tokens", "{corpus}", "val.bin"),
    tokenizer=R("tokenizer", "tokenizer.json"),
)
PRETRAIN_OUTPUT = dict(
    model=R("pretrain", "{corpus}", "{variant}", "seed{seed}", "model.safetensors"),
    config=R("pretrain", "{corpus}", "{variant}", "seed{seed}", "config.json"),
    metrics=R("pretrain", "{corpus}", "{variant}", "seed{seed}", "metrics.csv"),
)


rule pretrain:
    input:
        **PRETRAIN_INPUT,
    output:
        **PRETRAIN_OUTPUT,
    log:
        log("pretrain", "{corpus}_{variant}_seed{seed}.log"),
    benchmark:
        bench("pretrain", "{corpus}_{variant}_seed{seed}.tsv")
    wildcard_constraints:
        corpus=MAIN,
        variant="ternary|fp32",
        seed=r"\d+",
    conda:
        "../../envs/torch.yaml"
    threads: TRAIN_THREADS
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=240,
    params:
        ckpt=lambda w: ckpt_dir(w.corpus, w.variant, w.seed),
        model=config["model"],
        train=config["train"],
    shell:
        pretrain_cmd()


rule convergence:
    input:
        **PRETRAIN_INPUT,
    output:
        **PRETRAIN_OUTPUT,
    log:
        log("convergence", "{corpus}_{variant}_seed{seed}.log"),
    benchmark:
        bench("convergence", "{corpus}_{variant}_seed{seed}.tsv")
    wildcard_constraints:
        corpus="|".join(c for c in config["convergence_corpora"] if c != MAIN) or "^$",
        variant="ternary|fp32",
        seed=r"\d+",
    conda:
        "../../envs/torch.yaml"
    threads: TRAIN_THREADS
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=240,
    params:
        ckpt=lambda w: ckpt_dir(w.corpus, w.variant, w.seed),
        model=config["model"],
        train=config["train"],
        epochs=config["convergence"]["epochs"],
    shell:
        pretrain_cmd(" --epochs {params.epochs}")


# (corpus, variant, seed) of every pretraining run: the twins x seeds, then F1's convergence runs
PRETRAIN_RUNS = [(MAIN, v, s) for v in VARIANTS for s in SEEDS] + convergence_runs()
PRETRAIN_OUTPUTS = [
    R("pretrain", c, v, f"seed{s}", "metrics.csv") for c, v, s in PRETRAIN_RUNS
]
# every trained model: deliverables of the pipeline, and targets of `rule all` so that a deleted
# model is retrained (Snakemake recreates a missing file only when some target needs it)
MODEL_OUTPUTS = [
    R("pretrain", c, v, f"seed{s}", "model.safetensors") for c, v, s in PRETRAIN_RUNS
]
