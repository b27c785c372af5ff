#!/usr/bin/env bash
# One of the SSPO paper's runs on one machine with 8 GPUs: the Hydra preset experiment=$EXPERIMENT (model, data,
# batch sizes, schedule; hydra_configs/experiment/), the algorithm chosen by ALGO.
#
#   recipes/single_node/train.sh                                         # SSPO on Qwen2.5-Math-1.5B, seed 42
#   EXPERIMENT=paper_qwen2.5_math_7b ALGO=grpo SEED=1 recipes/single_node/train.sh   # GRPO on the 7B, seed 1
#   recipes/single_node/train.sh trainer.total_training_steps=20         # Hydra overrides go last
#
# Build the data first (sspo-data). The run directory is <output_dir>/<project>/<run name> (sspo-train's layout);
# running the same command again resumes from its latest checkpoint (trainer.resume_mode=auto).
# Ray: always a private one on this machine (ray_kwargs.ray_init.address=local), never a cluster found through
# RAY_ADDRESS or an earlier `ray start`. Several nodes: recipes/slurm/train.sbatch.
set -euo pipefail

# ===================================== user-adjustable =====================================
EXPERIMENT=${EXPERIMENT:-paper_qwen2.5_math_1.5b}  # a preset in hydra_configs/experiment/ (paper_qwen2.5_math_7b)
ALGO=${ALGO:-sspo}                      # grpo | gspo | gspo_wide | sspo
SEED=${SEED:-}                          # empty: the config's seed (42)
N_GPUS=${N_GPUS:-8}                     # GPUs of this machine to use (trainer.n_gpus_per_node)
RUN_NAME=${RUN_NAME:-}                  # trainer.experiment_name (empty: <algo>-<model>-seed<seed>)
OUTPUT_DIR=${OUTPUT_DIR:-}              # output_dir= (empty: $SSPO_OUTPUT_DIR, else ./outputs)
DATA_DIR=${DATA_DIR:-}                  # data_dir=, where sspo-data wrote the parquet files (empty: the config's)
MODEL_PATH=${MODEL_PATH:-}              # a local copy of the model (empty: the preset's Hugging Face id)
LOGGER=${LOGGER:-}                      # trainer.logger, e.g. "[console,file,wandb]" (empty: console + file)
PREFLIGHT_STRICT=${PREFLIGHT_STRICT:-1} # 1: pre-flight warnings stop the run before any GPU work
TRAIN_CMD=${TRAIN_CMD:-sspo-train}
# ===========================================================================================

die() { echo "$(basename "$0"): ERROR: $*" >&2; exit 1; }
PRESETS=$(dirname "${BASH_SOURCE[0]}")/../../hydra_configs/experiment
[[ $EXPERIMENT =~ ^[A-Za-z0-9_.-]+$ && -f $PRESETS/$EXPERIMENT.yaml ]] ||
    die "EXPERIMENT=$EXPERIMENT: no such preset; expected one of:" "$(basename -s .yaml "$PRESETS"/*.yaml | xargs)"
case $ALGO in grpo | gspo | gspo_wide | sspo) ;; *) die "ALGO=$ALGO: expected grpo, gspo, gspo_wide or sspo" ;; esac
[[ -z $SEED || $SEED =~ ^[0-9]+$ ]] || die "SEED=$SEED: expected a non-negative integer"
[[ $N_GPUS =~ ^[1-9][0-9]*$ ]] || die "N_GPUS=$N_GPUS: expected a positive integer"
command -v "$TRAIN_CMD" >/dev/null || die "$TRAIN_CMD is not on PATH: pip install -e . (or run inside docker/Dockerfile's image)"

overrides=("experiment=$EXPERIMENT" "algorithm=$ALGO" hardware=gpu_1x8 trainer.nnodes=1
    "trainer.n_gpus_per_node=$N_GPUS" trainer.resume_mode=auto ++ray_kwargs.ray_init.address=local)
if [[ -n $SEED ]]; then overrides+=("seed=$SEED"); fi
if [[ -n $RUN_NAME ]]; then overrides+=("trainer.experiment_name=$RUN_NAME"); fi
if [[ -n $OUTPUT_DIR ]]; then overrides+=("output_dir=$OUTPUT_DIR"); fi
if [[ -n $DATA_DIR ]]; then overrides+=("data_dir=$DATA_DIR"); fi
if [[ -n $MODEL_PATH ]]; then overrides+=("actor_rollout_ref.model.path=$MODEL_PATH"); fi
if [[ -n $LOGGER ]]; then overrides+=("trainer.logger=$LOGGER"); fi
if [[ $PREFLIGHT_STRICT == 1 ]]; then overrides+=(preflight.strict=true); fi

# Belt and braces next to the verl.plugins entry point: verl imports this module loudly in every process.
case ,${VERL_USE_EXTERNAL_MODULES:-}, in
    *,sspo_verl.adapter.plugin,*) ;;
    *) export VERL_USE_EXTERNAL_MODULES=${VERL_USE_EXTERNAL_MODULES:+$VERL_USE_EXTERNAL_MODULES,}sspo_verl.adapter.plugin ;;
esac
export PYTHONUNBUFFERED=1
echo "+ $TRAIN_CMD $(printf '%q ' "${overrides[@]}" "$@")" >&2
exec "$TRAIN_CMD" "${overrides[@]}" "$@"
