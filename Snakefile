# TernaryLM reproduction DAG:
#   prepare -> tokenizer -> tokenize -> pretrain (twins x seeds) -> evaluate / finetune /
#   sparsity / bench -> report (papermill notebooks, tables, figures, claims.csv)
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/tokenize.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/sparsity.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/report.smk"


write_resolved_config()


rule all:
    default_target: True
    input:
        REPORT_OUTPUTS,
        MODEL_OUTPUTS,
