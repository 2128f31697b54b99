# sparsity: fraction of zero / +1 / -1 ternary codes per layer and projection of every main
# twin x seed (paper F2). The fp32 twin is the control: what absmean ternarization would give.


rule sparsity:
    input:
        model=os.path.join(model_dir(MAIN, "{variant}", "{seed}"), "model.safetensors"),
        model_config=os.path.join(model_dir(MAIN, "{variant}", "{seed}"), "config.json"),
    output:
        R("sparsity", "{variant}", "seed{seed}.csv"),
    log:
        log("sparsity", "{variant}_seed{seed}.log"),
    benchmark:
        bench("sparsity", "{variant}_seed{seed}.tsv")
    wildcard_constraints:
        variant="ternary|fp32",
        seed=r"\d+",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        sparsity=config["sparsity"],
    shell:
        "{TERNARYLM} sparsity --config {CONFIG_FILE} --model $(dirname {input.model})"
        " --out {output} >> {log} 2>&1"


SPARSITY_OUTPUTS = [R("sparsity", v, f"seed{s}.csv") for v in VARIANTS for s in SEEDS]
