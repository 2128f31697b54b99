# tokenizer: WordPiece vocabulary from the main corpus; tokenize: uint16 token streams


rule tokenizer:
    input:
        R("data", MAIN, "train.txt"),
    output:
        R("tokenizer", "tokenizer.json"),
    log:
        log("tokenizer.log"),
    benchmark:
        bench("tokenizer.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        tokenizer=config["tokenizer"],
    shell:
        "{TERNARYLM} tokenizer --config {CONFIG_FILE} --train-text {input} --out {output} >> {log} 2>&1"


rule tokenize:
    input:
        text=R("data", "{corpus}", "{split}.txt"),
        tokenizer=R("tokenizer", "tokenizer.json"),
    output:
        bin=R("tokens", "{corpus}", "{split}.bin"),
        meta=R("tokens", "{corpus}", "{split}.json"),
    log:
        log("tokenize", "{corpus}_{split}.log"),
    benchmark:
        bench("tokenize", "{corpus}_{split}.tsv")
    wildcard_constraints:
        split="train|val",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    shell:
        "{TERNARYLM} tokenize --config {CONFIG_FILE} --text {input.text}"
        " --tokenizer {input.tokenizer} --out {output.bin} >> {log} 2>&1"
