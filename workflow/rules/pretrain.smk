# pretrain: the twins x seeds on the main corpus (and the fp32-noncausal control when
# controls.noncausal); convergence: F1's runs on the other corpora.
# Checkpoints go to ckpt_dir() (not an output), so a failed or preempted job resumes on rerun.

PRETRAIN_INPUT = dict(
    train=tokens("{corpus}", "train"),
    val=tokens("{corpus}", "val"),
    tokenizer=tokenizer_json(),
)
PRETRAIN_OUTPUT = {
    key: model_file("{corpus}", "{variant}", "{seed}", name)
    for key, name in [
        ("model", "model.safetensors"),
        ("config", "config.json"),
        ("metrics", "metrics.csv"),
        ("trajectory", "trajectory.csv"),
    ]
}


rule pretrain:
    input:
        **PRETRAIN_INPUT,
    output:
        **PRETRAIN_OUTPUT,
    log:
        log("pretrain", "{corpus}_{variant}_seed{seed}.log"),
    benchmark:
        rule_benchmark("pretrain", "{corpus}_{variant}_seed{seed}.tsv")
    wildcard_constraints:
        corpus=MAIN,
        variant=f"{TWIN}|{NONCAUSAL}",
        seed=r"\d+",
    conda:
        TORCH_ENV
    threads: TRAIN_THREADS
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=240,
    params:
        config=CONFIG_FILE,
        ckpt=lambda w: ckpt_dir(w.corpus, w.variant, w.seed),
        model=config["model"],
        train=config["train"],
    shell:
        pretrain_cmd()


use rule pretrain as convergence with:
    log:
        log("convergence", "{corpus}_{variant}_seed{seed}.log"),
    benchmark:
        rule_benchmark("convergence", "{corpus}_{variant}_seed{seed}.tsv")
    wildcard_constraints:
        corpus="|".join(c for c in config["convergence_corpora"] if c != MAIN) or "^$",
        variant=TWIN,
        seed=r"\d+",
    params:
        config=CONFIG_FILE,
        ckpt=lambda w: ckpt_dir(w.corpus, w.variant, w.seed),
        model=config["model"],
        train=config["train"],
        epochs=config["convergence"]["epochs"],  # `ternarylm pretrain` reads it off the main corpus
