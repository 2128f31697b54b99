#!/bin/bash
# run from /tmp/rdm after training; every command under nice -n 19, 1 thread
set -u
cd /tmp/rdm
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
R=results-realdata-mini
CFG=$(ls $R/config/*.json)
TOK=$R/tokenizer/tokenizer.json
VAL=$R/tokens/tinystories/val.bin
TRAIN=$R/tokens/tinystories/train.bin
CMDLOG=out/commands.log
run() {  # name, command...
  local name=$1; shift
  local t0=$(date +%s)
  echo "=== $name  $(date -u +%H:%M:%S)" >> $CMDLOG
  echo "$*" >> $CMDLOG
  nice -n 19 "$@" > out/logs/$name.log 2>&1
  local rc=$?
  echo "rc=$rc duration=$(( $(date +%s) - t0 ))s" >> $CMDLOG
  return $rc
}
stage=${1:-all}
if [[ $stage == all || $stage == eval ]]; then
for v in ternary fp32; do
  run evaluate_$v ternarylm evaluate --config $CFG --model $R/pretrain/tinystories/$v/seed0 --train $TRAIN --val $VAL --out out/evaluate_${v}_seed0.json --threads 1
done
fi
if [[ $stage == all || $stage == export ]]; then
for spec in "ternary none hf" "ternary bitnet hf-bitnet" "fp32 none hf"; do
  set -- $spec; v=$1; q=$2; d=$3
  cmd="ternarylm export --config $CFG --format hf --model $R/pretrain/tinystories/$v/seed0 --tokenizer $TOK --out exports/$v/$d --hf-quant $q --val-tokens $VAL --val-windows 0 --card-eval out/evaluate_${v}_seed0.json"
  run export_${v}_$d $cmd --card-command "$cmd"
  mkdir -p out/export_${v}_$d && cp exports/$v/$d/export.json exports/$v/$d/README.md exports/$v/$d/config.json out/export_${v}_$d/
done
fi
if [[ $stage == all || $stage == schemes ]]; then
run ppl_schemes python ppl_schemes.py exports/ternary/hf/tokenizer.json
fi
if [[ $stage == all || $stage == lmeval ]]; then
TASKS=$(python -m ternarylm.lm_eval_tasks)
for spec in "fp32 hf" "ternary hf" "ternary hf-bitnet"; do
  set -- $spec; v=$1; d=$2
  for mode in stream perdoc; do
    if [[ $mode == stream ]]; then meta='{"text": "'$R'/data/tinystories/val.txt", "stream": true}'; else meta='{"text": "'$R'/data/tinystories/val.txt"}'; fi
    run lmeval_${v}_${d}_$mode timeout 900 lm_eval --model hf --model_args pretrained=exports/$v/$d,dtype=float32 --tasks tinystories_ppl --include_path $TASKS --metadata "$meta" --batch_size 32 --output_path out/lmeval/${v}_${d}_$mode
  done
done
fi
