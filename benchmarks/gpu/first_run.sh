#!/usr/bin/env bash
# First GPU run: prove every CUDA path of the pipeline on one H100/H200, offline, in parts that each
# fit one 10-minute command: a part's step timeouts add up to at most 540 s (part 1: 530, 2: 470,
# 3: 370, 4: 540, 5: 300). Expected on an H100 (unmeasured: no GPU has run it yet): a few minutes
# per part, 15-25 min for all five; the CPU dry run's times are in tests/test_first_run.py's output.
#
#   OUT=benchmarks/gpu/first_run PART=1 bash benchmarks/gpu/first_run.sh   # then PART=2 .. 5 (or all)
#   DEVICE=cpu TINY=1 OUT=/tmp/fr bash benchmarks/gpu/first_run.sh         # CPU dry run, every part
#
# Parts (a part needing data or the configs makes them first if absent, so each runs on its own):
#   1  env, config, data, pretrain (compiled, bf16, SIGTERM + resume), evaluate
#   2  finetune (SIGTERM + resume), paper_finetune (paper-size backbone, eager as the paper run)
#   3  bench (paper-size random twins, every GPU bench format)
#   4  train_throughput (paper size; compiles three configurations)
#   5  check_w2 (benchmarks/gpu/check_w2.py: Triton 2-bit kernel on CUDA) when that file exists
# Every step has its own timeout and log ($OUT/<step>.log), so one failure does not hide the rest;
# $OUT/summary.tsv says which passed. Needs only this package (and torch with CUDA): the data is
# the built-in synthetic corpus and the paper-size models have random weights (speed only).
set -u -o pipefail

DEVICE=${DEVICE:-cuda}
TINY=${TINY:-0}
PART=${PART:-all}
OUT=${OUT:?set OUT to the output folder}
PY=${PYTHON:-python}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
W=$OUT/work # data, tokenizer, models, checkpoints
mkdir -p "$W"
SUMMARY=$OUT/summary.tsv
[ -s "$SUMMARY" ] || printf 'part\tstep\tstatus\texit\tseconds\n' >"$SUMMARY"

# the GPU run's formats; check_w2.py adds the 2-bit Triton rows where it exists
BENCH_FORMATS="torch-fp32 torch-nocache torch-bf16 torch-packed"
if [ "$TINY" = 1 ]; then # CPU dry run: the same commands at tiny sizes, but every code path the GPU
    # run takes: bf16 autocast, a CPU-inductor compile (train_throughput's compiled config), a
    # paper-size model build (bench step), every bench format the GPU run measures
    T_SHORT=150 T_LONG=300 STEPS=120 CKPT=10 COMPILE=false PRECISION=bf16 EPOCHS=4 PAPER_FT=320
    BENCH="--formats $BENCH_FORMATS --batch-sizes 1"
    MODEL='{"d_model": 256, "n_layers": 1, "n_heads": 4, "ffn_hidden": 256, "seq_len": 32, "dropout": 0.0}'
    PAPER_FT_MODEL='{"d_model": 256, "n_layers": 1, "n_heads": 4, "ffn_hidden": 256}'
    BENCH_CFG='{"new_tokens": 4, "prompt_tokens": 4, "warmup": 0, "repeats": 1, "budget_s": 1.0}'
    TT_ARGS="--small --configs ternary/naive,ternary/eager,ternary/compiled --warmup 1 --steps 1 --batch-size 1 --threads 1"
else # smoke-size model, compiled, bf16; the paper model where the step says "paper size"
    T_SHORT=100 T_LONG=240 STEPS=3000 CKPT=500 COMPILE=true PRECISION=bf16 EPOCHS=8 PAPER_FT=1280
    BENCH="--formats $BENCH_FORMATS --batch-sizes 1 32"
    MODEL='{"d_model": 256, "n_layers": 2, "n_heads": 4, "ffn_hidden": 256, "seq_len": 64, "dropout": 0.0}'
    PAPER_FT_MODEL='{}'
    BENCH_CFG='{}'
    TT_ARGS="--warmup 5 --steps 30"
fi

# step NAME TIMEOUT_S FUNCTION: run FUNCTION in a subshell under its own timeout, log and record it
step() {
    local name=$1 limit=$2 fn=$3 t0 rc status
    t0=$(date +%s)
    echo "[first_run] $name (timeout ${limit}s) ..." >&2
    timeout --kill-after=10 "$limit" bash -c "$fn" >"$OUT/$name.log" 2>&1
    rc=$?
    status=passed
    [ $rc -eq 0 ] || status=failed
    [ $rc -eq 124 ] && status=timeout
    [ $rc -eq 77 ] && status=skipped
    printf '%s\t%s\t%s\t%s\t%s\n' "$CUR_PART" "$name" "$status" "$rc" "$(($(date +%s) - t0))" >>"$SUMMARY"
    echo "[first_run] $name: $status" >&2
}
export DEVICE TINY OUT W PY REPO STEPS CKPT COMPILE PRECISION EPOCHS PAPER_FT MODEL PAPER_FT_MODEL BENCH_CFG \
    TT_ARGS BENCH

# stop CMD... : start CMD in the background, SIGTERM it once FILE exists, wait; then rerun it and
# require "resumed" in the second log (the checkpoint/resume path, as after a SLURM preemption)
stop_and_resume() {
    local file=$1 log=$2
    shift 2
    rm -f "$file"
    "$@" >"$log.1" 2>&1 &
    local pid=$!
    while kill -0 $pid 2>/dev/null && [ ! -e "$file" ]; do sleep 0.2; done
    kill -TERM $pid 2>/dev/null && echo "sent SIGTERM to $pid after $file appeared"
    wait $pid
    echo "first run exited $? (143 or 2 = stopped by the signal)"
    "$@" >"$log.2" 2>&1 || return 1
    grep -i "resumed" "$log.2" || { echo "no 'resumed' in $log.2" && return 1; }
}
export -f stop_and_resume

env_step() {
    $PY - <<'EOF'
import json, os, platform, torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "cuda_available": torch.cuda.is_available(), "device": os.environ["DEVICE"]}
try:
    import triton
    info["triton"] = triton.__version__
except ImportError:
    info["triton"] = None
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, capability=f"{p.major}.{p.minor}", memory_gb=round(p.total_memory / 2**30, 1),
                bf16_supported=torch.cuda.is_bf16_supported(), device_count=torch.cuda.device_count())
print(json.dumps(info, indent=1))
open(os.path.join(os.environ["OUT"], "env.json"), "w").write(json.dumps(info, indent=1))
if os.environ["DEVICE"] == "cuda":
    assert torch.cuda.is_available(), "DEVICE=cuda but torch sees no GPU"
EOF
}

config_step() { # the smoke preset over config.yaml, with this run's device, sizes and paths
    $PY - <<'EOF'
import json, os, yaml
repo, w = os.environ["REPO"], os.environ["W"]
def merge(a, b):
    return {k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v for k, v in {**a, **b}.items()}
cfg = yaml.safe_load(open(f"{repo}/config.yaml"))
cfg = merge(cfg, yaml.safe_load(open(f"{repo}/workflow/presets/smoke.yaml")))
dev, steps, ckpt = os.environ["DEVICE"], int(os.environ["STEPS"]), int(os.environ["CKPT"])
cfg = merge(cfg, {
    "results_dir": w, "model": json.loads(os.environ["MODEL"]),
    "train": {"device": dev, "compile": os.environ["COMPILE"] == "true", "precision": os.environ["PRECISION"],
              "epochs": 1000, "max_steps": steps, "ckpt_every": ckpt, "eval_every": steps // 2,
              "log_every": ckpt, "threads": 1},
    # enough epochs that the SIGTERM after the first epoch's checkpoint lands before the end
    "finetune": {"epochs": int(os.environ["EPOCHS"]), "max_train_examples": 200 if os.environ["TINY"] == "1" else None},
})
json.dump(cfg, open(f"{w}/config.json", "w"), indent=1)
root = yaml.safe_load(open(f"{repo}/config.yaml"))
# paper.json: the paper model and bench (bench step); paper_ft.json: the paper_finetune backbone,
# eager like the paper run's fine-tunes (finetune.compile: false), so its ms/step is a step time
paper = {**cfg, "model": root["model"], "bench": merge(root["bench"], json.loads(os.environ["BENCH_CFG"]))}
paper["train"] = {**cfg["train"], "compile": False}
json.dump(paper, open(f"{w}/paper.json", "w"), indent=1)
paper = {**paper, "model": merge(root["model"], json.loads(os.environ["PAPER_FT_MODEL"]))}
paper["finetune"] = {**cfg["finetune"], "epochs": 1, "max_train_examples": int(os.environ["PAPER_FT"]), "compile": False}
json.dump(paper, open(f"{w}/paper_ft.json", "w"), indent=1)
EOF
}

data_step() {
    set -e
    $PY -m ternarylm prepare --config "$W/config.json" --corpus synthetic --out-dir "$W/data"
    $PY -m ternarylm tokenizer --config "$W/config.json" --train-text "$W/data/train.txt" --out "$W/tokenizer.json"
    for s in train val; do
        $PY -m ternarylm tokenize --config "$W/config.json" --text "$W/data/$s.txt" --tokenizer "$W/tokenizer.json" --out "$W/tokens/$s.bin"
    done
}

pretrain_step() {
    stop_and_resume "$W/ckpt/pretrain/ckpt.pt" "$OUT/pretrain" \
        $PY -m ternarylm pretrain --config "$W/config.json" --corpus synthetic --variant ternary --seed 0 \
        --train "$W/tokens/train.bin" --val "$W/tokens/val.bin" --out-dir "$W/pretrain" --ckpt-dir "$W/ckpt/pretrain"
}

evaluate_step() {
    $PY -m ternarylm evaluate --config "$W/config.json" --model "$W/pretrain" \
        --train "$W/tokens/train.bin" --val "$W/tokens/val.bin" --out "$OUT/evaluate.json" && cat "$OUT/evaluate.json"
}

finetune_step() {
    stop_and_resume "$W/ckpt/finetune/finetune_state.pt" "$OUT/finetune" \
        $PY -m ternarylm finetune --config "$W/config.json" --task mrpc --model "$W/pretrain" \
        --tokenizer "$W/tokenizer.json" --out "$W/finetune" --ckpt "$W/ckpt/finetune" &&
        cp "$W/finetune/metrics.json" "$OUT/finetune_metrics.json"
}

paper_finetune_step() { # ms per fine-tuning step of a paper-size backbone (random weights)
    set -e
    # the paper model with the synthetic tokenizer's vocab (the backbone must match its tokenizer)
    $PY -c "import json; from ternarylm.bench import make_random_twins as m; c = json.load(open('$W/paper_ft.json'));
v = json.load(open('$W/tokens/train.json'))['vocab_size']; m({**c['model'], 'vocab_size': v}, '$W/paper_twins')"
    $PY -m ternarylm finetune --config "$W/paper_ft.json" --task mrpc --model "$W/paper_twins/ternary" \
        --tokenizer "$W/tokenizer.json" --out "$W/paper_finetune"
    $PY - <<'EOF'
import csv, json, os
w = os.environ["W"]
last = list(csv.DictReader(open(f"{w}/paper_finetune/curve.csv")))[-1]
ms = 1000 * float(last["seconds"]) / int(last["step"])
cfg = json.load(open(f"{w}/paper_ft.json"))
row = {"device": os.environ["DEVICE"], "steps": int(last["step"]), "seconds": float(last["seconds"]),
       "ms_per_step_incl_eval": round(ms, 2), "compile": cfg["finetune"]["compile"],
       "d_model": cfg["model"]["d_model"], "n_layers": cfg["model"]["n_layers"]}
print(json.dumps(row))
json.dump(row, open(f"{os.environ['OUT']}/paper_finetune.json", "w"), indent=1)
EOF
}

throughput_step() { # recompiles and graph breaks land in the log
    TORCH_LOGS=recompiles,graph_breaks $PY "$REPO/benchmarks/train_throughput.py" --device "$DEVICE" \
        --out "$OUT/train_throughput" $TT_ARGS
}

bench_step() { # paper-size random twins, every GPU bench format
    local cfg=$W/paper.json
    if [ "$TINY" = 1 ]; then # the paper-size build the GPU run does, then a tiny bench (a CPU
        # decodes the paper model at ~1 s/token: minutes per format)
        $PY -c "import json; from ternarylm.bench import make_random_twins as m; m(json.load(open('$W/paper.json'))['model'], '$W/paper_build')"
        cfg=$W/config.json
    fi
    # shellcheck disable=SC2086
    $PY -m ternarylm bench --config "$cfg" --device "$DEVICE" --make-random "$W/bench_twins" \
        $BENCH --out "$OUT/bench/results.csv"
}

w2_step() { # the 2-bit Triton kernel check, where the kernel's helper script exists (exit 77: skipped)
    local script=$REPO/benchmarks/gpu/check_w2.py
    [ -f "$script" ] || { echo "no $script: skipped" && return 77; }
    [ "$DEVICE" = cuda ] || { echo "check_w2 needs CUDA: skipped on $DEVICE" && return 77; }
    $PY "$script" --out "$OUT/check_w2"
}

# the shared set-up a part needs: configs and synthetic data, made once (any part may run first)
setup() {
    [ -s "$W/config.json" ] && [ -s "$W/paper_ft.json" ] || step config 30 config_step
    [ -s "$W/tokens/val.json" ] || step data "$T_SHORT" data_step
}
export -f env_step config_step data_step pretrain_step evaluate_step finetune_step paper_finetune_step \
    throughput_step bench_step w2_step

run_part() {
    CUR_PART=$1
    case $1 in
    1) step env 60 env_step && setup && step pretrain "$T_LONG" pretrain_step && step evaluate "$T_SHORT" evaluate_step ;;
    2) setup && step finetune "$T_LONG" finetune_step && step paper_finetune "$T_SHORT" paper_finetune_step ;;
    3) setup && step bench "$T_LONG" bench_step ;;
    4) step train_throughput 540 throughput_step ;;
    5) step check_w2 300 w2_step ;;
    *) echo "PART must be 1-5 or all, got $1" >&2 && exit 2 ;;
    esac
}
if [ "$PART" = all ]; then
    for p in 1 2 3 4 5; do run_part $p; done
else
    run_part "$PART"
fi

failed=$(awk -F'\t' 'NR > 1 && $3 != "passed" && $3 != "skipped"' "$SUMMARY" | wc -l)
echo "[first_run] $(($(wc -l <"$SUMMARY") - 1)) steps recorded, $failed not passed; see $SUMMARY" >&2
[ "$failed" -eq 0 ]
