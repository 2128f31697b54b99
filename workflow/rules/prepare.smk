# prepare: raw corpus -> data/{corpus}/{train,val}.txt + manifest.json


rule prepare:
    output:
        train=data("{corpus}", "train.txt"),
        val=data("{corpus}", "val.txt"),
        manifest=data("{corpus}", "manifest.json"),
    log:
        log("prepare", "{corpus}.log"),
    benchmark:
        rule_benchmark("prepare", "{corpus}.tsv")
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        config=CONFIG_FILE,
        source=config["data_source"],
        data_dir=config["data_dir"],
        corpus_cfg=lambda w: config["corpora"].get(w.corpus, {}),
    shell:
        "ternarylm prepare --config {params.config} --corpus {wildcards.corpus}"
        " --out-dir $(dirname {output.train}) >> {log} 2>&1"
