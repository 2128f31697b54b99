# prepare: raw corpus -> data/{corpus}/{train,val}.txt + manifest.json


rule prepare:
    output:
        train=R("data", "{corpus}", "train.txt"),
        val=R("data", "{corpus}", "val.txt"),
        manifest=R("data", "{corpus}", "manifest.json"),
    log:
        log("prepare", "{corpus}.log"),
    benchmark:
        bench("prepare", "{corpus}.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        source=config["data_source"],
        data_dir=config["data_dir"],
        corpus_cfg=lambda w: config["corpora"].get(w.corpus, {}),
    shell:
        "{TERNARYLM} prepare --config {CONFIG_FILE} --corpus {wildcards.corpus}"
        " --out-dir $(dirname {output.train}) >> {log} 2>&1"
