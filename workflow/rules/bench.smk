# bench: size, peak memory and decode latency of every deployed form of the main-corpus twins
# (seed SEEDS[0]) -- torch fp32/bf16/int8/packed and llama.cpp GGUF (T6). The GGUF files are
# exported to a temporary folder inside the job and deleted; `ternarylm export` writes them for use.
# Latency needs a quiet machine: run `snakemake ... bench` alone for numbers you quote.


rule bench:
    input:
        models=[model_file(MAIN, v, SEEDS[0], "model.safetensors") for v in VARIANTS],
        tokenizer=tokenizer_json(),
    output:
        csv=bench_csv("{device}"),
        env=bench_env("{device}"),
    log:
        log("bench", "{device}.log"),
    benchmark:
        rule_benchmark("bench", "{device}.tsv")
    wildcard_constraints:
        device="cpu|cuda",
    conda:
        TORCH_ENV
    threads: BENCH_THREADS
    resources:
        gpu=lambda w: 1 if w.device == "cuda" else 0,
        mem_mb=16000,
        runtime=60,
    params:
        config=CONFIG_FILE,
        bench=config["bench"],
        model=config["model"],
    shell:
        "ternarylm bench --config {params.config} --device {wildcards.device}"
        " --models $(dirname {input.models}) --tokenizer {input.tokenizer}"
        " --threads {threads} --out {output.csv} >> {log} 2>&1"
