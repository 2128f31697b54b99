# Shared helpers and input functions: paths, runs and config values every rule file uses.
import hashlib
import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from ternarylm import owner
from ternarylm.gpus import bench_devices
from ternarylm.io import UserError, write_text
from ternarylm.glue import LOCAL_FILES as GLUE_LOCAL_FILES, TASKS as GLUE_TASKS
from ternarylm.layout import NONCAUSAL, SCRATCH, TWINS, Plan
from ternarylm.tokenizer import local_pretrained

RESULTS = config["results_dir"]
MAIN = config["main_corpus"]
VARIANTS = config["variants"]
SEEDS = config["seeds"]

# bench.devices null: cpu, plus cuda when this machine sees a GPU. Resolved once, here, so every job
# (the report included) reads the same explicit list from the resolved config below.
config["bench"]["devices"] = bench_devices(config["bench"].get("devices"))

# Every path under results/ is spelled once, in ternarylm.layout.Layout, and the runs of this config
# are enumerated once, in ternarylm.layout.runs: PLAN (a Layout that also knows each notebook's inputs;
# the notebooks and `ternarylm report` build the same) is built once, here; the rules call its
# methods by these short names.
PLAN = Plan(RESULTS, config)
LAYOUT = PLAN
preflight_json = LAYOUT.preflight_json
data = LAYOUT.data
tokenizer_json = LAYOUT.tokenizer_json
tokens = LAYOUT.tokens
model_dir = LAYOUT.model_dir
model_file = LAYOUT.model_file
ckpt_dir = LAYOUT.ckpt_dir
eval_json = LAYOUT.eval_json
finetune_file = LAYOUT.finetune_file
finetune_ckpt_dir = LAYOUT.finetune_ckpt_dir
sparsity_csv = LAYOUT.sparsity_csv
bench_csv = LAYOUT.bench_csv
bench_env = LAYOUT.bench_env
deploy_gguf = LAYOUT.deploy_gguf
deploy_file = LAYOUT.deploy_file
log = LAYOUT.log
rule_benchmark = LAYOUT.rule_benchmark


# ------------------------------------------------------------------ the resolved config of this run
# Each invocation's merged config is stored under its content hash and handed to every job via
# params, so a job runs with the config of the invocation that scheduled it: another `snakemake`
# call (a dry run, --unlock, a second run with other settings) never changes what a running job
# reads. The file is written in `onstart` (real runs only) and never overwritten with other content.
CONFIG_TEXT = json.dumps(config, indent=2, sort_keys=True) + "\n"
# A Path, not a str: Snakemake's params trigger compares only builtin values, so this path (new for
# every config edit) does not rerun jobs by itself; each rule lists the config sections it reads in
# params, and a change to one of those reruns exactly the jobs that read it.
CONFIG_FILE = Path(
    LAYOUT.run_config(hashlib.sha256(CONFIG_TEXT.encode()).hexdigest()[:12])
)
# a copy for people and scripts (`ternarylm <stage> --config results/config.resolved.json`): the
# config of the latest run that executed jobs; no job reads it
LATEST_CONFIG = LAYOUT.config_file()


# one owner per results folder (ternarylm/owner.py): another checkout's folder, or one a running
# instance with another config holds, is refused at parse time; a real run holds it from onstart on
OWNER = owner.record(os.getcwd(), CONFIG_FILE.stem)
if workflow.is_main_process:
    try:
        owner.check(RESULTS, OWNER, forceall=owner.forceall_in(sys.argv))
    except UserError as e:
        raise WorkflowError(str(e)) from None


def write_resolved_config():
    try:
        owner.acquire(RESULTS, OWNER)
    except UserError as e:
        raise WorkflowError(str(e)) from None
    if os.path.exists(CONFIG_FILE):
        if CONFIG_FILE.read_text() != CONFIG_TEXT:
            raise WorkflowError(
                f"{CONFIG_FILE} does not hold the config its name is the hash of;"
                " delete it and rerun"
            )
    else:
        write_text(CONFIG_FILE, CONFIG_TEXT)
    write_text(LATEST_CONFIG, CONFIG_TEXT)


# ------------------------------------------------------------------ config helpers
# tokenizer.pretrained as a local file is read by the tokenizer rule: an input, so replacing the
# file rebuilds the vocabulary and everything after it (a hub id is pinned: see fetch_pretrained)
PRETRAINED_TOKENIZER = [
    str(p)
    for p in [local_pretrained(config["tokenizer"].get("pretrained"))]
    if p is not None
]
# GPU rules request one GPU unless the preset pins training to the CPU (smoke, realdata-mini)
GPU = 0 if config["train"]["device"] == "cpu" else 1
TRAIN_THREADS = config["train"]["threads"]
FINETUNE = config["finetune"]
FINETUNE_DEVICE = FINETUNE.get("device") or config["train"]["device"]
FINETUNE_THREADS = FINETUNE.get("threads") or TRAIN_THREADS
# null bench.threads: every core this run may use (--cores, capped by --max-threads), the same
# meaning as in ternarylm.bench (all cores of the job's allocation). A function: --unlock has no cores.
BENCH_THREADS = lambda wildcards: config["bench"]["threads"] or workflow.cores


# the runs of this config: the twins x seeds, the fp32-noncausal control (pretrained and evaluated
# like the twins; never fine-tuned, benched, sparsity-counted or deployed: those rules' variant
# constraints name the twins only), then F1's convergence runs that are not main runs
RUNS = PLAN.runs
PRETRAIN_RUNS = RUNS.pretrain
# wildcard patterns of the two twins, and of the twins plus the control
TWIN = "|".join(TWINS)
# the conda env of every torch job
TORCH_ENV = "../../envs/torch.yaml"
# every trained model: deliverables of the pipeline, and targets of `rule all` so that a deleted
# model is retrained (Snakemake recreates a missing file only when some target needs it); with the
# control's evaluations, which T3/F3 read
MODEL_OUTPUTS = [model_file(c, v, s, "model.safetensors") for c, v, s in PRETRAIN_RUNS]
MODEL_OUTPUTS += [eval_json(*r) for r in RUNS.noncausal]


def pretrain_cmd():
    return (
        "ternarylm pretrain --config {params.config} --corpus {wildcards.corpus}"
        " --variant {wildcards.variant} --seed {wildcards.seed}"
        " --train {input.train} --val {input.val} --tokenizer {input.tokenizer}"
        " --out-dir $(dirname {output.model}) --ckpt-dir {params.ckpt} --threads {threads} >> {log} 2>&1"
    )


def finetune_cmd():
    """``params.backbone``: ``--model DIR`` (a twin) or ``--backbone scratch`` (the random-init control)."""
    return (
        "ternarylm finetune --config {params.config} --task {wildcards.task} {params.backbone}"
        " --tokenizer {input.tokenizer} --seed {wildcards.seed}"
        " --out $(dirname {output.metrics}) --ckpt {params.ckpt} --threads {threads} >> {log} 2>&1"
    )


def finetune_data(wildcards):
    """Local task files the job reads (inputs, so edits rerun it): all of them for data_source local,
    MRPC's labeled test for hf (the hub has no test labels)."""
    files = {
        split: os.path.join(config["data_dir"], f)
        for (task, split), f in GLUE_LOCAL_FILES.items()
        if task == wildcards.task
    }
    if config["data_source"] == "local":
        return list(files.values())
    test = files.get("test")
    if config["data_source"] == "hf" and test and os.path.exists(test):
        return [test]
    return []


def deploy_card_inputs(wildcards):
    """evaluate JSONs and MRPC metrics of every seed of the variant (the card's results table)."""
    out = {"evals": [eval_json(MAIN, wildcards.variant, s) for s in SEEDS]}
    if "mrpc" in FINETUNE["tasks"]:
        out["finetunes"] = [
            finetune_file("mrpc", wildcards.variant, s, "metrics.json") for s in SEEDS
        ]
    return out
