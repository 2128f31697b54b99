# sparsity: fraction of zero / +1 / -1 ternary codes per layer and projection of every main
# twin x seed (paper F2). The fp32 twin is the control: what absmean ternarization would give.


rule sparsity:
    input:
        model=model_file(MAIN, "{variant}", "{seed}", "model.safetensors"),
        model_config=model_file(MAIN, "{variant}", "{seed}", "config.json"),
    output:
        sparsity_csv("{variant}", "{seed}"),
    log:
        log("sparsity", "{variant}_seed{seed}.log"),
    benchmark:
        rule_benchmark("sparsity", "{variant}_seed{seed}.tsv")
    wildcard_constraints:
        variant=TWIN,
        seed=r"\d+",
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        config=CONFIG_FILE,
        sparsity=config["sparsity"],
    shell:
        "ternarylm sparsity --config {params.config} --model $(dirname {input.model})"
        " --out {output} >> {log} 2>&1"
