# finetune: MRPC / SST-2 / CoLA on every twin x seed of the main corpus (T4, T5), and the scratch
# control (controls.scratch): the ternary architecture from random init, same settings and budget.
# Per-epoch state goes to finetune_ckpt_dir() (not an output), so a rerun resumes.

FINETUNE_PARAMS = dict(
    config=CONFIG_FILE,
    ckpt=lambda w: finetune_ckpt_dir(w.task, w.variant, w.seed),
    finetune={k: v for k, v in FINETUNE.items() if k != "tasks"},
    data_source=config["data_source"],
    data_dir=config["data_dir"],
)


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
        variant=TWIN,
        seed=r"\d+",
    conda:
        TORCH_ENV
    threads: FINETUNE_THREADS
    resources:
        gpu=0 if FINETUNE_DEVICE == "cpu" else 1,
        mem_mb=16000,
        runtime=120,
    params:
        **FINETUNE_PARAMS,
        # a function of the inputs: Snakemake's params trigger skips it (the inputs already say it)
        backbone=lambda w, input: f"--model {os.path.dirname(input.model)}",
    shell:
        finetune_cmd()


# no model input: the backbone is built from the config's model section and the tokenizer's
# vocabulary (the ternary twin's step-0 weights for this seed)
use rule finetune as finetune_scratch with:
    input:
        tokenizer=tokenizer_json(),
        data=finetune_data,
    wildcard_constraints:
        task="|".join(GLUE_TASKS),
        variant=SCRATCH,
        seed=r"\d+",
    params:
        **FINETUNE_PARAMS,
        backbone=lambda w, input: f"--backbone {w.variant}",
        model=config["model"],  # the architecture it builds: a model change reruns it
