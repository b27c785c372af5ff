#!/usr/bin/env bash
# An ablation on Slurm: algorithm x seed (x any Hydra knob) training runs as one job array, each run evaluated by a
# job that starts when its training ended well, and one table over seeds at the end.
#
#   recipes/slurm/ablation.sh [hydra overrides for every run...]
#   ALGOS="grpo gspo sspo" SEEDS="1 2 3" MODEL=qwen2.5-math-1.5b recipes/slurm/ablation.sh
#   GRID="actor_rollout_ref.actor.clip_ratio_high=0.28,0.4" SEEDS="1 2" SWEEP_NAME=clip recipes/slurm/ablation.sh
#   EVAL="--data-dir data --benchmarks aime24,amc23,math500,minerva_math,olympiadbench --baseline grpo" \
#       EVAL_SBATCH_ARGS="--gpus-per-node=1 --time=2:00:00" recipes/slurm/ablation.sh
#   DRY_RUN=1 recipes/slurm/ablation.sh      # check every run, write the manifest, print the commands only
#   SCHEDULER=local HARDWARE=gpu_1x8 EVAL="..." recipes/slurm/ablation.sh   # one machine: runs in sequence
#
# Before anything is queued, every run's config is composed and pre-flighted as its job will do it (`sspo-eval
# sweep-check`: a wrong preset name, a misspelt key, a missing data file or model fails here; CHECK=0 skips it).
# Each array task runs recipes/slurm/train.sbatch (multi-node Ray cluster, requeue-safe) on NODES nodes and
# reads its row of $RUNS_ROOT/$SWEEP_NAME/manifest.tsv: run name, run directory, algorithm, seed and the GRID
# values. Every combination has its own run directory $RUNS_ROOT/$SWEEP_NAME/<run name> (checkpoints, logs,
# resume). The other knobs of train.sbatch (MODEL, EXPERIMENT, HARDWARE, NET_IFACE, CONTAINER_*, ...) are read
# from this environment and apply to every run. Submitting the same sweep again (same manifest) resumes its runs;
# a different grid under an existing SWEEP_NAME is refused, because queued tasks read the manifest.
# With EVAL (options of `sspo-eval sweep`), array task i is followed by an evaluation job
# (--dependency=afterok:<array>_<i>; a failed run's evaluation is cancelled and its gap shows in the table), and a
# last job writes $RUNS_ROOT/$SWEEP_NAME/eval/<key>/table.md once every task and evaluation ended. Without EVAL,
# the summary prints the command that does all of it after the jobs end (it evaluates only what is missing).
# The summary (job ids, one line per run) is printed and appended to $RUNS_ROOT/$SWEEP_NAME/submissions.log.
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
SCHEDULER=${SCHEDULER:-slurm}                   # slurm: a job array | local: every run here, one after another
SUBMIT_TIMEOUT=${SUBMIT_TIMEOUT:-120}           # s: bound for sbatch (a hung Slurm controller)
EVAL=${EVAL:-}                                  # `sspo-eval sweep` options; empty: no evaluation jobs
EVAL_SBATCH_ARGS=${EVAL_SBATCH_ARGS:-}          # sbatch flags of each evaluation job, e.g. "--gpus-per-node=1"
CHECK=${CHECK:-1}                               # 0: no pre-flight of the runs' configs before submitting
CHECK_TIMEOUT=${CHECK_TIMEOUT:-900}             # s: bound for that pre-flight (~1-5 s per run)
SSPO_EVAL=${SSPO_EVAL:-sspo-eval}               # the sspo-eval command (evaluation jobs run it too)
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
[[ $SCHEDULER == slurm || $SCHEDULER == local ]] || die "SCHEDULER=$SCHEDULER: expected slurm or local"
[[ $CHECK == 0 || $CHECK == 1 ]] || die "CHECK=$CHECK: expected 1 (pre-flight every run) or 0"
[[ $CHECK_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "CHECK_TIMEOUT=$CHECK_TIMEOUT: expected a positive integer (seconds)"
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
if [[ -e $MANIFEST && $(<"$MANIFEST") != "$content" ]]; then
    die "$MANIFEST exists with a different grid (queued tasks read it): choose another SWEEP_NAME," \
        "or delete $SWEEP_DIR if none of its jobs is queued or running"
fi

# ------------------------------------ pre-flight of every run ------------------------------
# What train.sbatch passes to sspo-train, minus what only the allocation knows (GPUs per node, the Ray address).
fixed=("--fixed=hardware=${HARDWARE:-gpu_nx8}" "--fixed=trainer.nnodes=$NODES")
if [[ -n ${MODEL:-} ]]; then fixed+=("--fixed=model=$MODEL"); fi
if [[ -n ${EXPERIMENT:-} ]]; then fixed+=("--fixed=experiment=$EXPERIMENT"); fi
read -ra eval_args <<<"$EVAL"
if [[ $CHECK == 1 ]]; then
    command -v "$SSPO_EVAL" >/dev/null || die "SSPO_EVAL=$SSPO_EVAL not found: activate the environment with" \
        "sspo-verl (or CHECK=0 to submit without checking the runs' configs)"
    check_manifest=$(mktemp "${TMPDIR:-/tmp}/sspo-ablation-manifest.XXXXXX")
    printf '%s\n' "$content" >"$check_manifest"
    printf 'ablation.sh: composing and pre-flighting %d run(s) (CHECK=0 skips this)\n' "${#rows[@]}"
    for arg in "$@"; do fixed+=("--override=$arg"); done
    rc=0
    check_out=$(timeout --kill-after=10 "$CHECK_TIMEOUT" "$SSPO_EVAL" sweep-check "$check_manifest" "${fixed[@]}" \
        ${EVAL:+"--eval-args=$EVAL"} 2>&1) || rc=$?
    rm -f "$check_manifest"
    if ((rc == 124 || rc == 137)); then die "the pre-flight did not finish within CHECK_TIMEOUT=${CHECK_TIMEOUT}s"; fi
    ((rc == 0)) || die "nothing submitted: $(grep -v -i -E 'warn|^INFO:' <<<"$check_out" | sed -n '/error/,$p')"
fi

mkdir -p "$SWEEP_DIR" || die "cannot create $SWEEP_DIR"
if [[ ! -e $MANIFEST ]]; then printf '%s\n' "$content" >"$MANIFEST"; fi

# ------------------------------ local: every run here, in sequence --------------------------
# The job array's steps without Slurm: each run trains with sspo-train (the overrides train.sbatch gives it, on
# this machine's Ray), its launcher log records the exit status as train.sbatch's does, then (EVAL) it is
# evaluated; the table comes last. A rerun resumes unfinished runs and evaluates only what is missing.
sweep_cmd=("$SSPO_EVAL" sweep "$SWEEP_DIR" "${eval_args[@]}")
if [[ $SCHEDULER == local ]]; then
    TRAIN_CMD=${TRAIN_CMD:-sspo-train}
    for row in "${rows[@]}"; do
        IFS=$'\t' read -r i name run_dir algo seed c <<<"$row"
        read -ra grid_args <<<"$c"
        train=("$TRAIN_CMD" "algorithm=$algo" "hardware=${HARDWARE:-gpu_1x8}" "seed=$seed"
            ${MODEL:+"model=$MODEL"} ${EXPERIMENT:+"experiment=$EXPERIMENT"} "trainer.nnodes=$NODES"
            "trainer.resume_mode=auto" "trainer.experiment_name=$name" "trainer.default_local_dir=$run_dir/checkpoints"
            "hydra.run.dir=$run_dir" "${grid_args[@]}" "$@")
        printf 'run %s/%s: %s\n' "$((i + 1))" "$count" "$(printf '%q ' "${train[@]}")"
        [[ $DRY_RUN == 1 ]] && continue
        mkdir -p "$run_dir/logs"
        printf '\n===== attempt local on %s, %(%F %T)T =====\n' "$(hostname)" -1 >>"$run_dir/logs/launcher.log"
        rc=0
        "${train[@]}" >>"$run_dir/logs/train.log" 2>&1 || rc=$?
        printf '[sspo-local %(%F %T)T] exit %d (run dir %s; see logs/train.log)\n' -1 "$rc" "$run_dir" \
            | tee -a "$run_dir/logs/launcher.log"
        if [[ -n $EVAL ]] && ((rc == 0)); then "${sweep_cmd[@]}" --index "$i" >/dev/null || true; fi
    done
    if [[ -n $EVAL ]]; then
        if [[ $DRY_RUN == 1 ]]; then printf 'then: %s\n' "$(printf '%q ' "${sweep_cmd[@]}")"; else
            "${sweep_cmd[@]}" --table-only
        fi
    fi
    exit 0
fi

# ---------------------------------------- submit ------------------------------------------
read -ra extra <<<"$SBATCH_ARGS"
cmd=(sbatch --parsable "--array=0-$((count - 1))${MAX_PARALLEL:+%$MAX_PARALLEL}" "--job-name=$SWEEP_NAME"
    "--nodes=$NODES" "--output=$SWEEP_DIR/slurm-%A_%a.out" "--export=ALL,SSPO_MANIFEST=$MANIFEST"
    "${extra[@]}" "$TRAIN_SBATCH" "$@")
submit() {  # submit SBATCH_ARGS...: prints the job id; dies naming the command if sbatch fails or hangs
    local rc=0 out
    out=$(timeout --kill-after=10 "$SUBMIT_TIMEOUT" "$@") || rc=$?
    if ((rc == 124 || rc == 137)); then
        die "sbatch did not answer within SUBMIT_TIMEOUT=${SUBMIT_TIMEOUT}s (a hung Slurm controller? raise" \
            "SUBMIT_TIMEOUT if it is only slow); check 'squeue --name=$SWEEP_NAME' before submitting again"
    fi
    ((rc == 0)) || die "sbatch failed (status $rc): $(printf '%q ' "$@")"
    out=${out%%;*}
    [[ $out =~ ^[0-9]+$ ]] || die "sbatch printed '$out', expected a job id"
    printf '%s' "$out"
}
if [[ $DRY_RUN == 1 ]]; then
    job="(dry run, not submitted)" array="<array job>"
else
    job=$(submit "${cmd[@]}") array=$job
fi
eval_jobs=() eval_cmds=()
if [[ -n $EVAL ]]; then
    read -ra eval_extra <<<"$EVAL_SBATCH_ARGS"
    for ((i = 0; i < count; i++)); do
        # afterok: only after task i ended well; a failed task's evaluation is cancelled (--kill-on-invalid-dep)
        ecmd=(sbatch --parsable "--job-name=$SWEEP_NAME-eval" "--dependency=afterok:${array}_$i" --kill-on-invalid-dep=yes
            "--output=$SWEEP_DIR/slurm-eval-%j.out" "${eval_extra[@]}" "--wrap=$(printf '%q ' "${sweep_cmd[@]}" --index "$i")")
        eval_cmds+=("$(printf '%q ' "${ecmd[@]}")")
        if [[ $DRY_RUN != 1 ]]; then eval_jobs+=("$(submit "${ecmd[@]}")"); fi
    done
    after=$array${eval_jobs[*]:+:$(IFS=:; printf '%s' "${eval_jobs[*]}")}
    table_cmd=(sbatch --parsable "--job-name=$SWEEP_NAME-table" "--dependency=afterany:$after"
        "--output=$SWEEP_DIR/slurm-table-%j.out" "--wrap=$(printf '%q ' "${sweep_cmd[@]}" --table-only)")
    if [[ $DRY_RUN != 1 ]]; then table_job=$(submit "${table_cmd[@]}"); else table_job="(dry run)"; fi
fi

summary=$(
    printf '%s sweep %s: job array %s, %d run(s) on %s node(s) each%s\n' "$(date '+%F %T')" "$SWEEP_NAME" \
        "$job" "$count" "$NODES" "${MAX_PARALLEL:+, at most $MAX_PARALLEL at once}"
    printf '  command: %s\n' "$(printf '%q ' "${cmd[@]}")"
    printf '  %-5s  %-40s  %-9s  %-4s  %-10s  %s\n' task run algo seed evaluation overrides
    for row in "${rows[@]}"; do
        IFS=$'\t' read -r i name _ algo seed c <<<"$row"
        printf '  %-5s  %-40s  %-9s  %-4s  %-10s  %s\n' "$i" "$name" "$algo" "$seed" "${eval_jobs[i]:-${EVAL:+(dry run)}}" "${c:--}"
    done
    printf '  manifest: %s\n  run dirs: %s/<run>/{checkpoints,logs}   Slurm logs: %s/slurm-<job>_<task>.out\n' \
        "$MANIFEST" "$SWEEP_DIR" "$SWEEP_DIR"
    if [[ -n $EVAL ]]; then
        printf '  evaluation: one job per run after its training succeeds; table job %s (afterany): %s\n' \
            "$table_job" "$SWEEP_DIR/eval/<key>/table.md"
        if [[ $DRY_RUN == 1 ]]; then printf '    %s\n' "${eval_cmds[@]}" "$(printf '%q ' "${table_cmd[@]}")"; fi
        printf '  after the jobs end (evaluates only what is missing, e.g. a run resubmitted; then the table):\n'
    else
        printf '  after the jobs end, evaluate every run and write the table (reruns evaluate only what is missing):\n'
        sweep_cmd+=(--data-dir "<data dir>" --benchmarks "aime24,amc23,math500,minerva_math,olympiadbench"
            --baseline "${algos[0]}")
    fi
    printf '    %s\n' "$(printf '%q ' "${sweep_cmd[@]}")"
)
printf '%s\n' "$summary"
if [[ $DRY_RUN != 1 ]]; then
    printf '%s\n\n' "$summary" >>"$SWEEP_DIR/submissions.log"
    printf 'watch: squeue -j %s    cancel: scancel %s%s\n' "$job" "$job" "${eval_jobs[*]:+ ${eval_jobs[*]} $table_job}"
fi
