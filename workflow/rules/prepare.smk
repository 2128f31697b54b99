# preflight: every data source and the tokenizer resolved in seconds, before any data or GPU job;
# prepare: raw corpus -> data/{corpus}/{train,val}.txt + manifest.json


rule preflight:
    output:
        preflight_json(),
    log:
        log("preflight.log"),
    benchmark:
        rule_benchmark("preflight.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        config=CONFIG_FILE,
        source=config["data_source"],
        data_dir=config["data_dir"],
        hf_mirror=config.get("hf_mirror"),
        corpora=[MAIN] + config["convergence_corpora"],
        tasks=FINETUNE["tasks"],
        pretrained=config["tokenizer"]["pretrained"],  # what preflight resolves; not the vocabulary size
    shell:
        "ternarylm preflight --config {params.config} --out {output} >> {log} 2>&1"


rule prepare:
    input:
        # every job descends from prepare: a source that cannot be read stops the run here, in
        # seconds, not in a fine-tune hours later. ancient: a rerun preflight never reruns data jobs.
        ancient(preflight_json()),
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
        hf_mirror=config.get("hf_mirror"),
        corpus_cfg=lambda w: config["corpora"].get(w.corpus, {}),
    shell:
        "ternarylm prepare --config {params.config} --corpus {wildcards.corpus}"
        " --out-dir $(dirname {output.train}) >> {log} 2>&1"
