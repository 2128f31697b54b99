# report: papermill notebooks/*.ipynb -> results/notebooks/*.{ipynb,html}, results/tables/*.csv,
# results/figures/*.{png,pdf} and results/claims.csv. Each rule's inputs are exactly the
# artifacts its notebook reads (ternarylm.reporting.Artifacts.inputs lists the same, and
# `ternarylm report` checks them again before starting a kernel). Tables and figures are marked
# for `snakemake --report results/report.html`.

REPORT_TASKS = config["finetune"]["tasks"]
REPORT_DEVICES = config["bench"]["devices"]
MAIN_RUNS = [(MAIN, v, s) for v in VARIANTS for s in SEEDS]
NOTEBOOK_TABLES = {
    "pretraining": ["t1_model_config", "t2_val_ppl", "t3_loss_ratio", "f1_final_loss"],
    "finetuning": ["t4_mrpc", "t5_glue_extras", "finetune_runs"],
    "efficiency": ["t6_efficiency", "bench_all"],
    "sparsity": ["f2_sparsity_layers", "f2_sparsity_modules"],
}
NOTEBOOK_FIGURES = {
    "pretraining": ["f1_convergence", "f3_train_val_loss"],
    "finetuning": ["finetune_curves"] if REPORT_TASKS else [],
    "efficiency": ["t6_efficiency"],
    "sparsity": ["f2_sparsity", "f2_sparsity_modules"],
}


in_report = report  # snakemake's report() flag (the alias keeps snakefmt from reading a directive)


def f1_runs():
    """F1 runs on every convergence corpus (the main corpus reuses its main pretrain runs)."""
    conv = config["convergence"]
    return [
        (c, v, s)
        for c in config["convergence_corpora"]
        for v in conv["variants"]
        for s in conv["seeds"]
    ]


def pretraining_inputs():
    paths = [R("eval", c, v, f"seed{s}.json") for c, v, s in MAIN_RUNS]
    paths += [
        R("pretrain", c, v, f"seed{s}", "metrics.csv")
        for c, v, s in MAIN_RUNS + f1_runs()
    ]
    paths += [
        R("data", c, "manifest.json") for c in [MAIN, *config["convergence_corpora"]]
    ]
    return list(dict.fromkeys(paths))


def finetuning_inputs(curves=True):
    files = ["metrics.json", "curve.csv"] if curves else ["metrics.json"]
    return [
        R("finetune", t, v, f"seed{s}", f)
        for t in REPORT_TASKS
        for v in VARIANTS
        for s in SEEDS
        for f in files
    ]


def efficiency_inputs(env=True):
    files = ["results.csv", "env.json"] if env else ["results.csv"]
    return [R("bench", d, f) for d in REPORT_DEVICES for f in files]


def report_tables(notebook):
    return [
        in_report(
            R("tables", f"{t}.csv"),
            caption=f"../report/{t}.rst",
            category="Tables",
            subcategory=notebook,
        )
        for t in NOTEBOOK_TABLES[notebook]
    ]


def report_figures(notebook):
    return [
        in_report(
            R("figures", f"{f}.png"),
            caption=f"../report/fig_{f}.rst",
            category="Figures",
            subcategory=notebook,
        )
        for f in NOTEBOOK_FIGURES[notebook]
    ]


def report_pdfs(notebook):
    return [R("figures", f"{f}.pdf") for f in NOTEBOOK_FIGURES[notebook]]


def report_html(notebook):
    return in_report(
        R("notebooks", f"{notebook}.html"),
        caption="../report/notebook.rst",
        category="Notebooks",
    )


REPORT_CMD = (
    "{TERNARYLM} report --config {CONFIG_FILE} --notebook {params.notebook}"
    " --templates $(dirname {input.notebook}) --out-dir $(dirname {output.notebook})"
    " >> {log} 2>&1"
)


rule report_pretraining:
    input:
        notebook="notebooks/pretraining.ipynb",
        artifacts=pretraining_inputs(),
        model=[
            os.path.join(model_dir(MAIN, v, SEEDS[0]), f)
            for v in VARIANTS
            for f in ("config.json", "model.safetensors")
        ],
    output:
        notebook=R("notebooks", "pretraining.ipynb"),
        html=report_html("pretraining"),
        tables=report_tables("pretraining"),
        figures=report_figures("pretraining"),
        pdfs=report_pdfs("pretraining"),
    log:
        log("report", "pretraining.log"),
    benchmark:
        bench("report", "pretraining.tsv")
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        notebook="pretraining",
        model=config["model"],
        train=config["train"],
        convergence=config["convergence"],
        corpora=config["convergence_corpora"],
    shell:
        REPORT_CMD


rule report_finetuning:
    input:
        notebook="notebooks/finetuning.ipynb",
        artifacts=finetuning_inputs(),
    output:
        notebook=R("notebooks", "finetuning.ipynb"),
        html=report_html("finetuning"),
        tables=report_tables("finetuning"),
        figures=report_figures("finetuning"),
        pdfs=report_pdfs("finetuning"),
    log:
        log("report", "finetuning.log"),
    benchmark:
        bench("report", "finetuning.tsv")
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        notebook="finetuning",
        finetune=config["finetune"],
    shell:
        REPORT_CMD


rule report_efficiency:
    input:
        notebook="notebooks/efficiency.ipynb",
        artifacts=efficiency_inputs(),
    output:
        notebook=R("notebooks", "efficiency.ipynb"),
        html=report_html("efficiency"),
        tables=report_tables("efficiency"),
        figures=report_figures("efficiency"),
        pdfs=report_pdfs("efficiency"),
    log:
        log("report", "efficiency.log"),
    benchmark:
        bench("report", "efficiency.tsv")
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        notebook="efficiency",
        bench=config["bench"],
    shell:
        REPORT_CMD


rule report_sparsity:
    input:
        notebook="notebooks/sparsity.ipynb",
        artifacts=SPARSITY_OUTPUTS,
    output:
        notebook=R("notebooks", "sparsity.ipynb"),
        html=report_html("sparsity"),
        tables=report_tables("sparsity"),
        figures=report_figures("sparsity"),
        pdfs=report_pdfs("sparsity"),
    log:
        log("report", "sparsity.log"),
    benchmark:
        bench("report", "sparsity.tsv")
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        notebook="sparsity",
        model=config["model"],
    shell:
        REPORT_CMD


rule report_claims:
    input:
        notebook="notebooks/claims.ipynb",
        artifacts=list(
            dict.fromkeys(
                pretraining_inputs()
                + finetuning_inputs(curves=False)
                + efficiency_inputs(env=False)
                + SPARSITY_OUTPUTS
            )
        ),
    output:
        notebook=R("notebooks", "claims.ipynb"),
        html=report_html("claims"),
        claims=in_report(
            R("claims.csv"),
            caption="../report/claims.rst",
            category="Claims vs reproduction",
        ),
    log:
        log("report", "claims.log"),
    benchmark:
        bench("report", "claims.tsv")
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        notebook="claims",
        model=config["model"],
        train=config["train"],
        data_source=config["data_source"],
        corpora=config["corpora"],
        convergence=config["convergence"],
        finetune=config["finetune"],
        bench=config["bench"],
    shell:
        REPORT_CMD


REPORT_OUTPUTS = [
    R("notebooks", f"{nb}.html")
    for nb in ("pretraining", "finetuning", "efficiency", "sparsity", "claims")
] + [R("claims.csv")]
