# mechanisms: the paper's mechanism claims tested at the run's own scale (ternarylm/report/mechanisms.py),
# from the twins' and the fp32-noncausal control's evaluations, metrics and sparsity trajectories.
# Not part of `all`: a target of its own (the small-data preset is built for it).
#   snakemake --cores 2 mechanisms --configfile workflow/presets/small-data.yaml
from ternarylm.layout import RATIO_FIGURE, TRAJECTORY_FIGURE

MECH_RUNS = RUNS.main + RUNS.noncausal


rule mechanisms:
    input:
        evals=[eval_json(*r) for r in MECH_RUNS],
        metrics=[LAYOUT.metrics_csv(*r) for r in MECH_RUNS],
        trajectories=[LAYOUT.trajectory_csv(*r) for r in MECH_RUNS],
    output:
        rows=LAYOUT.mechanisms_csv(),
        curves=LAYOUT.table("mech_ratio_curves"),
        figures=[
            LAYOUT.figure(f, e)
            for f in (TRAJECTORY_FIGURE, RATIO_FIGURE)
            for e in ("png", "pdf")
        ],
    log:
        log("report", "mechanisms.log"),
    benchmark:
        rule_benchmark("report", "mechanisms.tsv")
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        config=CONFIG_FILE,
        model=config["model"],
    shell:
        "ternarylm mechanisms --config {params.config} >> {log} 2>&1"
