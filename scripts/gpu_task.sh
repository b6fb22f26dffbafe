#!/usr/bin/env bash
# One standard task end to end on a lent GPU machine (16 cores): collect demos with many
# workers, train on CUDA, evaluate with many workers; the checkpoints, the evaluation report
# and the training curves land in $OUT. For runs that would take hours on 2 CPU cores.
# Needs vismanip importable and MUJOCO_GL=egl (see README "Measured on a GPU").
#
#     TASK=square EPISODES=300 EPOCHS=60 TRAIN="policy.head=chunk" bash scripts/gpu_task.sh
#
# LOADER_WORKERS (8): loader processes feeding CUDA; BENCH=1 first times the loader with 0
# and LOADER_WORKERS processes on the collected demos; CKPTS ("best last"): which to evaluate.
# COLLECT and EVAL add key=value overrides / eval flags, e.g. sim-to-real on Lift:
#     TASK=lift EPISODES=1000 COLLECT="randomization=configs/randomization/half.yaml" \
#     TRAIN="augmentation=configs/augmentation/sim2real.yaml" \
#     EVAL="--shift none,unseen-textures,lighting,camera,all" bash scripts/gpu_task.sh
set -u
task=${TASK:?TASK=lift|pick_place_can|square}
episodes=${EPISODES:-200}
epochs=${EPOCHS:-50}
workers=${WORKERS:-14}
out=${OUT:-gpu_task}
accelerator=${ACCELERATOR:-gpu}
loader_workers=${LOADER_WORKERS:-8}
work=$(mktemp -d)
mkdir -p "$out"
start=$SECONDS
echo "=== collect $episodes $task demos with $workers workers"
# shellcheck disable=SC2086  # COLLECT, TRAIN and EVAL hold several words
timeout "${COLLECT_S:-240}" python -m vismanip.cli collect --config "configs/collect/$task.yaml" \
    episodes="$episodes" workers="$workers" ${COLLECT:-} --quiet --out "$work/demos.hdf5"
echo "=== collect: exit $? at $((SECONDS - start)) s"
if [ "${BENCH:-0}" = 1 ]; then
    echo "=== loader bench: 0 vs $loader_workers loader workers"
    timeout "${BENCH_S:-90}" python scripts/bench_train.py --data "$work/demos.hdf5" --devices cuda \
        --encoders compact --caches on --augmentations shift-kornia --batches 40 \
        --loader-workers "0,$loader_workers"
    echo "=== loader bench: exit $? at $((SECONDS - start)) s"
fi
echo "=== train $epochs epochs on $accelerator, $loader_workers loader workers: ${TRAIN:-}"
# shellcheck disable=SC2086  # as above
timeout "${TRAIN_S:-300}" python -m vismanip.cli train --config "configs/bc/$task.yaml" \
    data="$work/demos.hdf5" trainer.accelerator="$accelerator" trainer.max_epochs="$epochs" \
    rollout.every_n_epochs="${ROLLOUT_EVERY:-10}" rollout.episodes="$workers" rollout.workers="$workers" \
    loader.num_workers="$loader_workers" output_dir="$work/run" ${TRAIN:-} 2>&1 | grep -v "it/s\]" | tail -40
echo "=== train: exit ${PIPESTATUS[0]} at $((SECONDS - start)) s"
cp "$work"/run/*.ckpt "$work"/run/config.yaml "$work"/run/logs/metrics.csv "$out"/ 2>/dev/null
for ckpt in ${CKPTS:-best last}; do
    [ -f "$work/run/$ckpt.ckpt" ] || continue
    echo "=== eval $ckpt.ckpt: ${EVAL_EPISODES:-50} episodes, $workers workers"
    # shellcheck disable=SC2086  # as above
    timeout "${EVAL_S:-150}" python -m vismanip.cli eval "$work/run/$ckpt.ckpt" --task "$task" \
        --episodes "${EVAL_EPISODES:-50}" --workers "$workers" ${EVAL:-} --json > "$out/eval_$ckpt.json"
    status=$?
    cat "$out/eval_$ckpt.json"
    echo "=== eval $ckpt: exit $status at $((SECONDS - start)) s"
done
true
