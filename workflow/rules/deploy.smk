# deploy: ready-to-publish forms of seed SEEDS[0] of each main-corpus twin (issue 15):
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


def deploy_card_inputs(wildcards):
    """evaluate JSONs and MRPC metrics of every seed of the variant (the card's results table)."""
    out = {
        "evals": [R("eval", MAIN, wildcards.variant, f"seed{s}.json") for s in SEEDS]
    }
    if "mrpc" in FINETUNE["tasks"]:
        out["finetunes"] = [
            R("finetune", "mrpc", wildcards.variant, f"seed{s}", "metrics.json")
            for s in SEEDS
        ]
    return out


rule deploy_gguf:
    input:
        model=os.path.join(
            model_dir(MAIN, "{variant}", DEPLOY_SEED), "model.safetensors"
        ),
        tokenizer=R("tokenizer", "tokenizer.json"),
    output:
        R("deploy", "{variant}", "ternarylm-{variant}.gguf"),
    log:
        log("deploy", "gguf_{variant}.log"),
    benchmark:
        bench("deploy", "gguf_{variant}.tsv")
    wildcard_constraints:
        variant="ternary|fp32",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        # the fp32 twin's projections as F16 (half the size; TQ types need ternary weights)
        linear_type="f16",
    shell:
        "{TERNARYLM} export --config {CONFIG_FILE} --format gguf --model $(dirname {input.model})"
        " --tokenizer {input.tokenizer} --ternary-type tq2_0 --linear-type {params.linear_type}"
        " --out {output} >> {log} 2>&1"


rule deploy_hf:
    input:
        unpack(deploy_card_inputs),
        model=os.path.join(
            model_dir(MAIN, "{variant}", DEPLOY_SEED), "model.safetensors"
        ),
        tokenizer=R("tokenizer", "tokenizer.json"),
        val=R("tokens", MAIN, "val.bin"),
        gguf=R("deploy", "{variant}", "ternarylm-{variant}.gguf"),
    output:
        model=R("deploy", "{variant}", "{form}", "model.safetensors"),
        config=R("deploy", "{variant}", "{form}", "config.json"),
        summary=R("deploy", "{variant}", "{form}", "export.json"),
        card=R("deploy", "{variant}", "{form}", "README.md"),
    log:
        log("deploy", "{form}_{variant}.log"),
    benchmark:
        bench("deploy", "{form}_{variant}.tsv")
    wildcard_constraints:
        variant="ternary|fp32",
        form="hf|hf-bitnet",
    conda:
        "../../envs/torch.yaml"
    threads: TRAIN_THREADS
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        quant=lambda w: HF_FORMS[w.form],
        val_windows=DEPLOY_VAL_WINDOWS,
        evals=lambda w, input: " ".join(input.evals),
        finetunes=lambda w, input: " ".join(input.get("finetunes", [])),
        # the command line's --configfile options (config.yaml itself is always read)
        command=" ".join(
            ["snakemake"]
            + [
                f"--configfile {os.path.relpath(f)}"
                for f in workflow.overwrite_configfiles
            ]
            + ["deploy"]
        ),
    shell:
        "OMP_NUM_THREADS={threads} {TERNARYLM} export --config {CONFIG_FILE} --format hf"
        " --hf-quant {params.quant} --model $(dirname {input.model}) --tokenizer {input.tokenizer}"
        " --out $(dirname {output.model}) --val-tokens {input.val} --val-windows {params.val_windows}"
        " --card-eval {params.evals} --card-finetune {params.finetunes}"
        " --card-gguf ../$(basename {input.gguf}) --card-command '{params.command}' >> {log} 2>&1"


DEPLOY_OUTPUTS = [
    R("deploy", v, f, "README.md")
    for v in VARIANTS
    for f in (["hf", "hf-bitnet"] if v == "ternary" else ["hf"])
] + [R("deploy", v, f"ternarylm-{v}.gguf") for v in VARIANTS]


rule deploy:
    # `snakemake deploy`: only the publishable models (and what they need)
    input:
        DEPLOY_OUTPUTS,
