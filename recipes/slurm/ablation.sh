#!/usr/bin/env bash
# Submit an ablation as one Slurm job array: algorithm x seed (x any Hydra knob), one run per combination.
#
#   recipes/slurm/ablation.sh [hydra overrides for every run...]
#   ALGOS="grpo gspo sspo" SEEDS="1 2 3" MODEL=qwen2.5_math_1.5b recipes/slurm/ablation.sh
#   GRID="actor_rollout_ref.actor.clip_ratio_high=0.28,0.4" SEEDS="1 2" SWEEP_NAME=clip recipes/slurm/ablation.sh
#   DRY_RUN=1 recipes/slurm/ablation.sh      # write the manifest and print the sbatch command only
#
# Each array task runs recipes/slurm/train.sbatch (multi-node Ray cluster, requeue-safe) on NODES nodes and
# reads its row of $RUNS_ROOT/$SWEEP_NAME/manifest.tsv: run name, run directory, algorithm, seed and the GRID
# values. Every combination has its own run directory $RUNS_ROOT/$SWEEP_NAME/<run name> (checkpoints, logs,
# resume). The other knobs of train.sbatch (MODEL, EXPERIMENT, NET_IFACE, CONTAINER_*, ...) are read from this
# environment and apply to every run. Submitting the same sweep again (same manifest) resumes its runs;
# a different grid under an existing SWEEP_NAME is refused, because queued tasks read the manifest.
# The summary (job id, array, one line per run) is printed and appended to $RUNS_ROOT/$SWEEP_NAME/submissions.log.
set -euo pipefail
# bash >= 4.4: empty arrays under `set -u` (RHEL/Rocky 8 ship 4.4).
((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 404)) || { echo "ablation.sh needs bash >= 4.4, found $BASH_VERSION" >&2; exit 1; }

# ===================================== user-adjustable =====================================
SWEEP_NAME=${SWEEP_NAME:-ablation}              # names the sweep directory, the job and every run
ALGOS=${ALGOS:-grpo gspo sspo}                  # space-separated: grpo gspo gspo_wide sspo
SEEDS=${SEEDS:-1 2 3}                           # space-separated integers
GRID=${GRID:-}                                  # space-separated key=v1,v2 Hydra knobs (cartesian product)
RUNS_ROOT=${RUNS_ROOT:-$PWD/runs}               # on a filesystem shared by all nodes
NODES=${NODES:-1}                               # nodes per run
MAX_PARALLEL=${MAX_PARALLEL:-}                  # at most this many runs at once (empty: Slurm decides)
SBATCH_ARGS=${SBATCH_ARGS:-}                    # extra sbatch flags, e.g. "--partition=gpu --time=24:00:00"
DRY_RUN=${DRY_RUN:-0}                           # 1: do not submit
SUBMIT_TIMEOUT=${SUBMIT_TIMEOUT:-120}           # s: bound for sbatch (a hung Slurm controller)
# ===========================================================================================

die() {
    printf 'ablation.sh: ERROR: %s\n' "$*" >&2
    exit 1
}
TRAIN_SBATCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/train.sbatch
[[ -r $TRAIN_SBATCH ]] || die "cannot read $TRAIN_SBATCH"

# ---------------------------------------- checks ------------------------------------------
[[ $SWEEP_NAME =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "SWEEP_NAME=$SWEEP_NAME: use letters, digits, '.', '_', '-'"
[[ $NODES =~ ^[1-9][0-9]*$ ]] || die "NODES=$NODES: expected a positive integer"
[[ $SUBMIT_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "SUBMIT_TIMEOUT=$SUBMIT_TIMEOUT: expected a positive integer (seconds)"
[[ -z $MAX_PARALLEL || $MAX_PARALLEL =~ ^[1-9][0-9]*$ ]] || die "MAX_PARALLEL=$MAX_PARALLEL: expected a positive integer"
[[ $RUNS_ROOT != *,* && $RUNS_ROOT != *[[:space:]]* ]] || die "RUNS_ROOT=$RUNS_ROOT: no commas or spaces (sbatch --export)"
read -ra algos <<<"$ALGOS"
read -ra seeds <<<"$SEEDS"
((${#algos[@]})) || die "ALGOS is empty"
((${#seeds[@]})) || die "SEEDS is empty"
for algo in "${algos[@]}"; do
    case $algo in grpo | gspo | gspo_wide | sspo) ;; *) die "ALGOS: $algo is not one of grpo gspo gspo_wide sspo" ;; esac
done
for seed in "${seeds[@]}"; do [[ $seed =~ ^[0-9]+$ ]] || die "SEEDS: $seed is not an integer"; done

# GRID: keys and their value lists; combos holds one "k=v k=v" string per grid point.
read -ra grid <<<"$GRID"
combos=("")
for entry in "${grid[@]}"; do
    [[ $entry =~ ^(\+{0,2}[A-Za-z_][A-Za-z0-9_.@/-]*)=([^,]+(,[^,]+)*)$ ]] ||
        die "GRID entry '$entry': expected key=value1,value2 (no spaces; values without commas)"
    key=${BASH_REMATCH[1]}
    case ${key#+} in
        algorithm | seed | trainer.nnodes | trainer.n_gpus_per_node | trainer.default_local_dir | \
            trainer.experiment_name | trainer.resume_mode)
            die "GRID key $key is set by the launcher: use ALGOS / SEEDS / NODES instead" ;;
    esac
    IFS=, read -ra values <<<"${BASH_REMATCH[2]}"
    next=()
    for c in "${combos[@]}"; do
        for v in "${values[@]}"; do next+=("${c:+$c }$key=$v"); done
    done
    combos=("${next[@]}")
done
# An override for every run must not silently replace a grid axis.
for arg in "$@"; do
    for entry in "${grid[@]}"; do
        [[ ${arg%%=*} != "${entry%%=*}" ]] || die "override $arg replaces the GRID axis ${entry%%=*} in every run"
    done
done

run_suffix() {  # "a.b.clip_ratio_high=0.28 +x.y=v/w" -> "-clip_ratio_high0.28-yv_w"
    local kv key out="" kvs
    read -ra kvs <<<"$1"
    for kv in "${kvs[@]}"; do
        key=${kv%%=*}
        key=${key##*.}
        key=${key#+}
        key=${key#+}
        out+="-$key${kv#*=}"
    done
    printf '%s' "${out//[^A-Za-z0-9._-]/_}"
}

# --------------------------------------- manifest -----------------------------------------
SWEEP_DIR=$RUNS_ROOT/$SWEEP_NAME
MANIFEST=$SWEEP_DIR/manifest.tsv
rows=()
declare -A seen=()
index=0
for algo in "${algos[@]}"; do
    for seed in "${seeds[@]}"; do
        for c in "${combos[@]}"; do
            name="$SWEEP_NAME-$algo-seed$seed$(run_suffix "$c")"
            [[ -z ${seen[$name]:-} ]] || die "two grid points share the run name $name: make GRID keys/values distinct"
            seen[$name]=1
            rows+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s' "$index" "$name" "$SWEEP_DIR/$name" "$algo" "$seed" "$c")")
            index=$((index + 1))
        done
    done
done
count=${#rows[@]}
content=$(printf '# index\trun_name\trun_dir\talgo\tseed\toverrides\n'; printf '%s\n' "${rows[@]}")
mkdir -p "$SWEEP_DIR" || die "cannot create $SWEEP_DIR"
if [[ -e $MANIFEST ]]; then
    [[ $(<"$MANIFEST") == "$content" ]] ||
        die "$MANIFEST exists with a different grid (queued tasks read it): choose another SWEEP_NAME," \
            "or delete $SWEEP_DIR if none of its jobs is queued or running"
else
    printf '%s\n' "$content" >"$MANIFEST"
fi

# ---------------------------------------- submit ------------------------------------------
read -ra extra <<<"$SBATCH_ARGS"
cmd=(sbatch --parsable "--array=0-$((count - 1))${MAX_PARALLEL:+%$MAX_PARALLEL}" "--job-name=$SWEEP_NAME"
    "--nodes=$NODES" "--output=$SWEEP_DIR/slurm-%A_%a.out" "--export=ALL,SSPO_MANIFEST=$MANIFEST"
    "${extra[@]}" "$TRAIN_SBATCH" "$@")
if [[ $DRY_RUN == 1 ]]; then
    job="(dry run, not submitted)"
else
    rc=0
    out=$(timeout --kill-after=10 "$SUBMIT_TIMEOUT" "${cmd[@]}") || rc=$?
    if ((rc == 124 || rc == 137)); then
        die "sbatch did not answer within SUBMIT_TIMEOUT=${SUBMIT_TIMEOUT}s (a hung Slurm controller? raise" \
            "SUBMIT_TIMEOUT if it is only slow); check 'squeue --name=$SWEEP_NAME' before submitting again"
    fi
    ((rc == 0)) || die "sbatch failed (status $rc): $(printf '%q ' "${cmd[@]}")"
    job=${out%%;*}
    [[ $job =~ ^[0-9]+$ ]] || die "sbatch printed '$out', expected a job id"
fi

summary=$(
    printf '%s sweep %s: job array %s, %d run(s) on %s node(s) each%s\n' "$(date '+%F %T')" "$SWEEP_NAME" \
        "$job" "$count" "$NODES" "${MAX_PARALLEL:+, at most $MAX_PARALLEL at once}"
    printf '  command: %s\n' "$(printf '%q ' "${cmd[@]}")"
    printf '  %-5s  %-40s  %-9s  %-4s  %s\n' task run algo seed overrides
    for row in "${rows[@]}"; do
        IFS=$'\t' read -r i name _ algo seed c <<<"$row"
        printf '  %-5s  %-40s  %-9s  %-4s  %s\n' "$i" "$name" "$algo" "$seed" "${c:--}"
    done
    printf '  manifest: %s\n  run dirs: %s/<run>/{checkpoints,logs}   Slurm logs: %s/slurm-<job>_<task>.out\n' \
        "$MANIFEST" "$SWEEP_DIR" "$SWEEP_DIR"
)
printf '%s\n' "$summary"
if [[ $DRY_RUN != 1 ]]; then
    printf '%s\n\n' "$summary" >>"$SWEEP_DIR/submissions.log"
    printf 'watch: squeue -j %s    cancel: scancel %s\n' "$job" "$job"
fi
