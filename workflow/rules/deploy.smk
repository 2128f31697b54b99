# deploy: ready-to-publish forms of seed SEEDS[0] of each main-corpus twin:
#   results/deploy/{variant}/ternarylm-{variant}.gguf   llama.cpp (TQ2_0 ternary / F16 fp32 twin)
#   results/deploy/{variant}/hf/                        transformers LlamaForCausalLM + model card
#   results/deploy/ternary/hf-bitnet/                   transformers' bitnet form (W1.58A8)
# The model card reads the evaluate / finetune results of all seeds of the variant.

DEPLOY_SEED = SEEDS[0]
# the export's trained-vs-unpacked PPL uses evaluate's validation windows, capped so the CPU job
# stays minutes at paper scale (the count is recorded in export.json and the card)
DEPLOY_VAL_WINDOWS = min(
    (config["evaluate"].get("val_batches") or 10**9) * config["train"]["batch_size"],
    512,
)
HF_FORMS = {"hf": "none", "hf-bitnet": "bitnet"}


rule deploy_gguf:
    input:
        model=model_file(MAIN, "{variant}", DEPLOY_SEED, "model.safetensors"),
        tokenizer=tokenizer_json(),
    output:
        deploy_gguf("{variant}"),
    log:
        log("deploy", "gguf_{variant}.log"),
    benchmark:
        rule_benchmark("deploy", "gguf_{variant}.tsv")
    wildcard_constraints:
        variant=TWIN,
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        config=CONFIG_FILE,
        # ternary twin: TQ2_0 codes; the fp32 twin's projections as F16 (half the size)
        types=lambda w: (
            "--ternary-type tq2_0" if w.variant == "ternary" else "--linear-type f16"
        ),
    shell:
        "ternarylm export --config {params.config} --format gguf --model $(dirname {input.model})"
        " --tokenizer {input.tokenizer} {params.types}"
        " --out {output} >> {log} 2>&1"


rule deploy_hf:
    input:
        unpack(deploy_card_inputs),
        model=model_file(MAIN, "{variant}", DEPLOY_SEED, "model.safetensors"),
        tokenizer=tokenizer_json(),
        val=tokens(MAIN, "val"),
        gguf=deploy_gguf("{variant}"),
    output:
        model=deploy_file("{variant}", "{form}", "model.safetensors"),
        config=deploy_file("{variant}", "{form}", "config.json"),
        summary=deploy_file("{variant}", "{form}", "export.json"),
        card=deploy_file("{variant}", "{form}", "README.md"),
    log:
        log("deploy", "{form}_{variant}.log"),
    benchmark:
        rule_benchmark("deploy", "{form}_{variant}.tsv")
    wildcard_constraints:
        variant=TWIN,
        form="hf|hf-bitnet",
    conda:
        TORCH_ENV
    threads: TRAIN_THREADS
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        config=CONFIG_FILE,
        quant=lambda w: HF_FORMS[w.form],
        val_windows=DEPLOY_VAL_WINDOWS,
        evals=lambda w, input: " ".join(input.evals),
        finetunes=lambda w, input: " ".join(input.get("finetunes", [])),
        # the command that remakes this folder, runnable as written from the repository root: the
        # target before --configfile (which takes every word after it), and results_dir given
        # explicitly (a --config override is not among the config files)
        command=" ".join(
            ["snakemake", "deploy", "--cores", "all"]
            + [
                f"--configfile {os.path.relpath(f)}"
                for f in workflow.overwrite_configfiles
            ]
            + [f"--config results_dir={RESULTS}"]
        ),
    shell:
        "OMP_NUM_THREADS={threads} ternarylm export --config {params.config} --format hf"
        " --hf-quant {params.quant} --model $(dirname {input.model}) --tokenizer {input.tokenizer}"
        " --out $(dirname {output.model}) --val-tokens {input.val} --val-windows {params.val_windows}"
        " --card-eval {params.evals} --card-finetune {params.finetunes}"
        " --card-gguf ../$(basename {input.gguf}) --card-command '{params.command}' >> {log} 2>&1"


DEPLOY_OUTPUTS = [
    deploy_file(v, f, "README.md")
    for v in VARIANTS
    for f in (["hf", "hf-bitnet"] if v == "ternary" else ["hf"])
] + [deploy_gguf(v) for v in VARIANTS]


rule deploy:
    # `snakemake deploy`: only the publishable models (and what they need)
    input:
        DEPLOY_OUTPUTS,
