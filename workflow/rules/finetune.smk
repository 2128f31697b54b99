# finetune: MRPC / SST-2 / CoLA on every twin x seed of the main corpus (T4, T5).
# Per-epoch state goes to R("ckpt", "finetune", ...) (not an output), so a rerun resumes.

# local GLUE files per task (ternarylm/glue.py reads them; listed here so edits rerun the job)
GLUE_LOCAL_FILES = {
    "mrpc": ["mrpc/train.tsv", "mrpc/dev.tsv", "mrpc/test_labeled.txt"],
    "cola": ["cola/train.tsv", "cola/dev.tsv"],
    "sst2": ["sst2/train.tsv", "sst2/dev.tsv"],
}
FINETUNE = config["finetune"]
FINETUNE_DEVICE = FINETUNE.get("device") or config["train"]["device"]
FINETUNE_THREADS = FINETUNE.get("threads") or TRAIN_THREADS


def finetune_data(wildcards):
    """Local task files the job reads: all of them for data_source local, MRPC's labeled test for hf."""
    files = [
        os.path.join(config["data_dir"], f) for f in GLUE_LOCAL_FILES[wildcards.task]
    ]
    if config["data_source"] == "local":
        return files
    if config["data_source"] == "hf":
        return [
            f for f in files if f.endswith("test_labeled.txt") and os.path.exists(f)
        ]
    return []


rule finetune:
    input:
        model=os.path.join(model_dir(MAIN, "{variant}", "{seed}"), "model.safetensors"),
        model_config=os.path.join(model_dir(MAIN, "{variant}", "{seed}"), "config.json"),
        tokenizer=R("tokenizer", "tokenizer.json"),
        data=finetune_data,
    output:
        metrics=R("finetune", "{task}", "{variant}", "seed{seed}", "metrics.json"),
        curve=R("finetune", "{task}", "{variant}", "seed{seed}", "curve.csv"),
    log:
        log("finetune", "{task}_{variant}_seed{seed}.log"),
    benchmark:
        bench("finetune", "{task}_{variant}_seed{seed}.tsv")
    wildcard_constraints:
        task="mrpc|sst2|cola",
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
        ckpt=lambda w: R("ckpt", "finetune", w.task, w.variant, f"seed{w.seed}"),
        finetune={k: v for k, v in FINETUNE.items() if k != "tasks"},
        data_source=config["data_source"],
        data_dir=config["data_dir"],
    shell:
        "{TERNARYLM} finetune --config {CONFIG_FILE} --task {wildcards.task}"
        " --model $(dirname {input.model}) --tokenizer {input.tokenizer} --seed {wildcards.seed}"
        " --out $(dirname {output.metrics}) --ckpt {params.ckpt} --threads {threads} >> {log} 2>&1"


FINETUNE_OUTPUTS = expand(
    R("finetune", "{task}", "{variant}", "seed{seed}", "metrics.json"),
    task=FINETUNE["tasks"],
    variant=VARIANTS,
    seed=SEEDS,
)
