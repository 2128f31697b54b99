# finetune: MRPC / SST-2 / CoLA on every twin x seed of the main corpus (T4, T5).
# Per-epoch state goes to finetune_ckpt_dir() (not an output), so a rerun resumes.


rule finetune:
    input:
        model=model_file(MAIN, "{variant}", "{seed}", "model.safetensors"),
        model_config=model_file(MAIN, "{variant}", "{seed}", "config.json"),
        tokenizer=tokenizer_json(),
        data=finetune_data,
    output:
        metrics=finetune_file("{task}", "{variant}", "{seed}", "metrics.json"),
        curve=finetune_file("{task}", "{variant}", "{seed}", "curve.csv"),
    log:
        log("finetune", "{task}_{variant}_seed{seed}.log"),
    benchmark:
        rule_benchmark("finetune", "{task}_{variant}_seed{seed}.tsv")
    wildcard_constraints:
        task="|".join(GLUE_TASKS),
        variant="ternary|fp32",
        seed=r"\d+",
    conda:
        "../../envs/torch.yaml"
    threads: FINETUNE_THREADS
    resources:
        gpu=0 if FINETUNE_DEVICE == "cpu" else 1,
        mem_mb=16000,
        runtime=120,
    params:
        config=CONFIG_FILE,
        ckpt=lambda w: finetune_ckpt_dir(w.task, w.variant, w.seed),
        finetune={k: v for k, v in FINETUNE.items() if k != "tasks"},
        data_source=config["data_source"],
        data_dir=config["data_dir"],
    shell:
        "ternarylm finetune --config {params.config} --task {wildcards.task}"
        " --model $(dirname {input.model}) --tokenizer {input.tokenizer} --seed {wildcards.seed}"
        " --out $(dirname {output.metrics}) --ckpt {params.ckpt} --threads {threads} >> {log} 2>&1"
