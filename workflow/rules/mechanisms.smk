# mechanisms: the paper's mechanism claims tested at the run's own scale (ternarylm/report/mechanisms.py),
# from the twins' and the fp32-noncausal control's evaluations, metrics and sparsity trajectories.
# Not part of `all`: a target of its own (the small-data preset is built for it).
#   snakemake --cores 2 mechanisms --configfile workflow/presets/small-data.yaml
from ternarylm.report.figures_mech import RATIO_FIGURE, TRAJECTORY_FIGURE

MECH_RUNS = [(MAIN, v, s) for v in VARIANTS for s in SEEDS] + NONCAUSAL_RUNS


rule mechanisms:
    input:
        evals=[eval_json(*r) for r in MECH_RUNS],
        metrics=[model_file(*r, "metrics.csv") for r in MECH_RUNS],
        trajectories=[model_file(*r, "trajectory.csv") for r in MECH_RUNS],
    output:
        rows=LAYOUT.path("mechanisms.csv"),
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
