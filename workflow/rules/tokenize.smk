# tokenizer: WordPiece vocabulary from the main corpus; tokenize: uint16 token streams


rule tokenizer:
    input:
        text=data(MAIN, "train.txt"),
        pretrained=PRETRAINED_TOKENIZER,
    output:
        tokenizer_json(),
    log:
        log("tokenizer.log"),
    benchmark:
        rule_benchmark("tokenizer.tsv")
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        config=CONFIG_FILE,
        tokenizer=config["tokenizer"],
    shell:
        "ternarylm tokenizer --config {params.config} --train-text {input.text} --out {output} >> {log} 2>&1"


rule tokenize:
    input:
        text=data("{corpus}", "{split}.txt"),
        tokenizer=tokenizer_json(),
    output:
        bin=tokens("{corpus}", "{split}"),
        meta=tokens("{corpus}", "{split}", "json"),
    log:
        log("tokenize", "{corpus}_{split}.log"),
    benchmark:
        rule_benchmark("tokenize", "{corpus}_{split}.tsv")
    wildcard_constraints:
        split="train|val",
    conda:
        TORCH_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        config=CONFIG_FILE,
    shell:
        "ternarylm tokenize --config {params.config} --text {input.text}"
        " --tokenizer {input.tokenizer} --out {output.bin} >> {log} 2>&1"
