#!/usr/bin/env bash
# The GPU paths in one short run, on a machine with an NVIDIA GPU and vismanip importable:
# NVIDIA EGL rendering, collection with many workers, Lightning training on CUDA through the
# CLI (kornia augmenting on the GPU), eval and export of that checkpoint, the exported policy
# loaded on CUDA, GAIL with 2 and 14 rollout workers on the machine's many cores, and the
# benchmarks' CPU-vs-CUDA columns. Nothing here is a test: CI has no GPU. Each step is
# bounded by `timeout` and reported even if an earlier one failed.
#
#     OUT=gpu_checks bash scripts/gpu_checks.sh 2>&1 | tee gpu_checks.log
#     SKIP="augmentation latency" bash scripts/gpu_checks.sh   # skip steps by their first word
set -u
out=${OUT:-gpu_checks}
work=$(mktemp -d)
mkdir -p "$out"
step() {  # step NAME SECONDS COMMAND...: run, time and report one check
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    case " ${SKIP:-} " in *" ${name%% *} "*) echo "=== $name: skipped"; return;; esac
    echo "=== $name"
    if [ "$1" = vismanip ]; then  # the CLI without needing its entry point installed
        shift
        set -- python -m vismanip.cli "$@"
    fi
    timeout "$limit" "$@"
    echo "=== $name: exit $? in $((SECONDS - start)) s"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
export MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
step "GL renderer" 60 python -c "
import mujoco, numpy as np
from OpenGL import GL
model = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=\"1\"/></worldbody></mujoco>')
with mujoco.Renderer(model, 84, 84) as renderer:
    print('GL_RENDERER:', GL.glGetString(GL.GL_RENDERER).decode())
"
step "render probe (vismanip.envs.rendering)" 60 python -m vismanip.envs.rendering
step "env steps/s with EGL" 180 python scripts/bench_env.py --steps 200 --rounds 3 --episodes 0
step "collect 16 Lift demos, 8 workers" 240 vismanip collect --task lift --episodes 16 \
    --workers 8 --size 84 --out "$work/lift.hdf5"
step "train 3 epochs on CUDA (CLI)" 240 vismanip train --config configs/bc/lift.yaml \
    data="$work/lift.hdf5" trainer.accelerator=gpu trainer.max_epochs=3 \
    rollout.every_n_epochs=3 rollout.episodes=4 rollout.workers=4 output_dir="$work/bc"
step "eval on 8 workers" 180 vismanip eval "$work/bc/last.ckpt" --task lift --episodes 16 \
    --workers 8 --out "$out/eval"
step "export" 180 vismanip export "$work/bc/last.ckpt" --out "$work/policy.pt"
# GAIL's learner runs on the CPU; what many cores buy is rollout workers. The same 6,000
# env steps from the 3-epoch policy with 2 and with 14 workers (one episode per worker
# per iteration); the step's time and the run's last progress line say the env steps/s.
for workers in 2 14; do
    step "gail with $workers workers, 6k env steps" 300 bash -c "python -m vismanip.cli gail \
        --config configs/gail/lift_iql.yaml init=$work/bc/last.ckpt demos=$work/lift.hdf5 \
        task=lift_perturbed env_steps=6000 workers=$workers episodes_per_iteration=$workers \
        learner.actor_start_steps=2000 eval_every=100000 eval_episodes=$workers output_dir=$work/gail_$workers 2>&1 \
        | tr '\\r' '\\n' | grep -E 'step/s|rror' | tail -2"
    cp "$work/gail_$workers/gail.md" "$out/gail_$workers.md" 2>/dev/null
done
step "bench_gail_update (idle cores)" 300 python scripts/bench_gail_update.py
step "exported policy on CUDA vs CPU" 120 python -c "
import numpy as np, torch
from vismanip.policies.artifact import ExportedArtifact
cpu, gpu = ExportedArtifact('$work/policy.pt'), ExportedArtifact('$work/policy.pt', device='cuda')
rng = np.random.default_rng(0)
shapes = [(1, 84, 84, 3)] * len(cpu.metadata['cameras'])
worst = 0.0
for _ in range(50):
    frames = [rng.integers(0, 256, s, dtype=np.uint8) for s in shapes]
    proprio = rng.normal(size=(1, 9)).astype(np.float32)
    worst = max(worst, float(np.abs(cpu(*frames, proprio)[0] - gpu(*frames, proprio)[0]).max()))
print(f'max |action cuda - action cpu| over 50 inputs: {worst:.2e}')
"
step "throughput of training, CPU vs CUDA" 300 python scripts/bench_train.py --data "$work/lift.hdf5" \
    --devices cpu,cuda --caches on --batches 20 --encoders compact,resnet18
step "augmentation on CPU vs CUDA" 120 python scripts/bench_augment.py --rounds 5
step "latency on CUDA" 240 python scripts/bench_latency.py --device cuda --iters 200 \
    --out "$out/latency.md"
cp "$work"/bc/*.md "$out/" 2>/dev/null
true
