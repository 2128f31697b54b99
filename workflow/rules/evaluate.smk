# evaluate: perplexity with and without label smoothing, train/val loss ratio (T2, T3)


rule evaluate:
    input:
        model=R("pretrain", "{corpus}", "{variant}", "seed{seed}", "model.safetensors"),
        train=R("tokens", "{corpus}", "train.bin"),
        val=R("tokens", "{corpus}", "val.bin"),
    output:
        R("eval", "{corpus}", "{variant}", "seed{seed}.json"),
    log:
        log("evaluate", "{corpus}_{variant}_seed{seed}.log"),
    benchmark:
        bench("evaluate", "{corpus}_{variant}_seed{seed}.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: TRAIN_THREADS
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=30,
    params:
        evaluate=config["evaluate"],
    shell:
        "{TERNARYLM} evaluate --config {CONFIG_FILE} --model $(dirname {input.model})"
        " --train {input.train} --val {input.val} --out {output} --threads {threads} >> {log} 2>&1"


EVAL_OUTPUTS = [R("eval", MAIN, v, f"seed{s}.json") for v in VARIANTS for s in SEEDS]
