# report: one rule per notebook (the loop below), each executing notebooks/{nb}.ipynb with papermill
# into results/notebooks/{nb}.{ipynb,html}, results/tables/*.csv, results/figures/*.{png,pdf} and,
# for claims, results/claims.csv. Inputs, outputs and the config sections a notebook reads all come
# from ternarylm.layout: `ternarylm report` checks the same input list before it starts a kernel,
# so rules and notebooks cannot disagree. Tables, figures and the rendered notebooks are marked for
# `snakemake --report`.
from ternarylm.layout import NOTEBOOK_CONFIG, NOTEBOOK_TABLES, NOTEBOOKS

REPORT_ART = PLAN  # common.smk's: a Layout that also knows what each notebook reads

in_report = report  # snakemake's report() flag (the alias keeps snakefmt from reading a directive)


def report_outputs(nb):
    """Named outputs of notebook ``nb``; report captions are relative to this rule file."""
    art = REPORT_ART
    tables = [
        in_report(
            art.table(t),
            caption=f"../report/{t}.rst",
            category="Tables",
            subcategory=nb,
        )
        for t in NOTEBOOK_TABLES[nb]
    ]
    figures = [
        in_report(
            art.figure(f),
            caption=f"../report/fig_{f}.rst",
            category="Figures",
            subcategory=nb,
        )
        for f in art.figure_names(nb)
    ]
    out = {
        "notebook": art.notebook(nb),
        "html": in_report(
            art.notebook(nb, "html"),
            caption="../report/notebook.rst",
            category="Notebooks",
        ),
        "tables": tables,
        "figures": figures,
        "pdfs": art.figures(nb, "pdf"),
    }
    if nb == "claims":
        out["claims"] = in_report(
            art.claims_csv(),
            caption="../report/claims.rst",
            category="Claims vs reproduction",
        )
    return out


for nb in NOTEBOOKS:

    rule:
        name:
            f"report_{nb}"
        input:
            notebook=workflow.source_path(f"../../notebooks/{nb}.ipynb"),
            artifacts=REPORT_ART.inputs(nb),
        output:
            **report_outputs(nb),
        log:
            REPORT_ART.log("report", f"{nb}.log"),
        benchmark:
            REPORT_ART.rule_benchmark("report", f"{nb}.tsv")
        conda:
            "../../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=20,
        params:
            notebook=nb,
            config=CONFIG_FILE,
            # the config sections the notebook reads: changing one reruns exactly its notebooks
            sections={k: config[k] for k in NOTEBOOK_CONFIG[nb]},
        shell:
            "ternarylm report --config {params.config} --notebook {params.notebook}"
            " --templates $(dirname {input.notebook}) --out-dir $(dirname {output.notebook})"
            " >> {log} 2>&1"


REPORT_OUTPUTS = [REPORT_ART.notebook(nb, "html") for nb in NOTEBOOKS] + [
    REPORT_ART.claims_csv()
]
