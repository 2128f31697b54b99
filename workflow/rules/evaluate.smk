# evaluate: perplexity with and without label smoothing, train/val loss ratio (T2, T3)


rule evaluate:
    input:
        model=model_file("{corpus}", "{variant}", "{seed}", "model.safetensors"),
        train=tokens("{corpus}", "train"),
        val=tokens("{corpus}", "val"),
    output:
        eval_json("{corpus}", "{variant}", "{seed}"),
    log:
        log("evaluate", "{corpus}_{variant}_seed{seed}.log"),
    benchmark:
        rule_benchmark("evaluate", "{corpus}_{variant}_seed{seed}.tsv")
    conda:
        TORCH_ENV
    threads: TRAIN_THREADS
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=30,
    params:
        config=CONFIG_FILE,
        evaluate=config["evaluate"],
    shell:
        "ternarylm evaluate --config {params.config} --model $(dirname {input.model})"
        " --train {input.train} --val {input.val} --out {output} --threads {threads} >> {log} 2>&1"
