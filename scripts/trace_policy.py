"""Print what a policy does in closed loop: every N steps, the gripper position, the object
relative to it, the fingers, the gripper's orientation and the action.

Success rates say that a policy fails; this says how (GAIL experiment 1's diagnoses came
from it: BC drives past the cube and spins; one GAIL run climbed away for reward). The last
line measures whether the policy turns a tilted gripper back: per rotation axis, the slope
of its rotation command on the gripper's tilt from its orientation at the episode's start
(axis-angle, world frame, as OSC's rotation command). Noise in a perturbed task tilts the
gripper; a policy that corrects it has negative slopes, one that ignores it slopes near 0.
It also counts the steps with the fingers closed on nothing (the object still down) and how
often the policy commands the gripper open there; `--reopen N` asks whether re-opening is
all a failed grasp lacks: after each such miss the gripper is forced open for N steps and
the policy goes on from there. And it counts the steps with the gripper more than 2 cm past
the object in +x (every Lift demo approaches from -x) and how often the policy commands -x
there: whether it knows the way back.

    python scripts/trace_policy.py runs/gail_exp/bc60/last.ckpt --task lift_perturbed --episodes 1
    python scripts/trace_policy.py runs/gail_exp/bc60/last.ckpt --task lift_perturbed --expert
    python scripts/trace_policy.py runs/gail_exp/gail_R/last.ckpt --task lift_perturbed --reopen 8
    python scripts/trace_policy.py runs/gen/clutter600_30/last.ckpt --objects ball,lemon --episodes 4
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from vismanip.envs.actions import GRIPPER_DIM, GRIPPER_OPEN
from vismanip.envs.tasks import task_spec
from vismanip.envs.vision_env import VisionEnv
from vismanip.experts import make_expert
from vismanip.experts.base import gripper_gap
from vismanip.policies.checkpoint import load_policy
from vismanip.rollout.episode import EVAL_STREAM, episode_seed, rollout

PAST_M = 0.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--task", default="")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--every", type=int, default=20, help="print every N steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--objects",
        default="",
        help="comma-separated objects to draw from, no clutter (as the suite)",
    )
    parser.add_argument(
        "--expert", action="store_true", help="the task's scripted expert acts (a reference)"
    )
    parser.add_argument(
        "--reopen", type=int, default=0, help="force the gripper open N steps after a miss"
    )
    args = parser.parse_args()
    loaded = load_policy(args.checkpoint)
    policy = loaded.weights.build()
    env_config = loaded.env_for(args.task)
    if args.objects:
        env_config = replace(env_config, objects=args.objects.split(","), clutter=0)
    object_key = task_spec(env_config.task).object_key
    env = VisionEnv(env_config)
    expert = make_expert(env_config.task, env) if args.expert else None
    np.set_printoptions(precision=3, suppress=True)
    tilts: list[np.ndarray] = []
    turns: list[np.ndarray] = []
    successes = reopens = 0
    missed_steps = opened_on_miss = 0  # does the policy itself re-open after a miss?
    past_steps = back_on_past = 0  # does it go back when it is past the object in +x?
    try:
        for index in range(args.episodes):
            trace: list[tuple[dict, np.ndarray]] = []
            forced_open = 0  # steps the gripper is still held open

            def actor(obs: dict, trace: list = trace) -> np.ndarray:
                nonlocal forced_open, reopens, missed_steps, opened_on_miss
                nonlocal past_steps, back_on_past
                action = np.array(expert.act(obs) if expert else policy.select_action(obs))
                is_past = obs[f"{object_key}_pos"][0] - obs["robot0_eef_pos"][0] < -PAST_M
                past_steps += is_past
                back_on_past += is_past and action[0] < 0
                is_miss = missed(obs, object_key, trace)
                missed_steps += is_miss
                opened_on_miss += is_miss and action[GRIPPER_DIM] < 0
                if args.reopen and forced_open == 0 and is_miss:
                    forced_open = args.reopen
                    reopens += 1
                    print(f"  t={len(trace):3d} closed on nothing: gripper forced open")
                if forced_open > 0:
                    action[GRIPPER_DIM] = GRIPPER_OPEN
                    forced_open -= 1
                trace.append((obs, action))
                return action

            policy.reset()
            episode = rollout(env, actor, episode_seed(args.seed, index, EVAL_STREAM), record=False)
            target = f" ({env.target_object})" if env.target_object else ""
            print(f"episode {index}{target}: success {episode.success}, {len(episode)} steps")
            successes += episode.success
            start = trace[0][0]["robot0_eef_quat"]
            for obs, action in trace:
                tilts.append(tilt_from(start, obs["robot0_eef_quat"]))
                turns.append(action[3:6])
            for step in range(0, len(trace), args.every):
                obs, action = trace[step]
                eef = obs["robot0_eef_pos"]
                relative = obs[f"{object_key}_pos"] - eef
                print(
                    f"  t={step:3d} eef={eef} object-eef={relative} "
                    f"fingers={obs['robot0_gripper_qpos']} quat={obs['robot0_eef_quat']} "
                    f"action={action}"
                )
    finally:
        env.close()
    forced = f", {reopens} forced re-openings" if args.reopen else ""
    print(f"{successes}/{args.episodes} succeeded{forced}")
    print(f"{missed_steps} steps closed on nothing; the policy commanded open on {opened_on_miss}")
    print(
        f"{past_steps} steps more than {100 * PAST_M:.0f} cm past the object in +x; "
        f"the policy commanded -x on {back_on_past}"
    )
    tilt, turn = np.stack(tilts), np.stack(turns)
    slopes = [np.polyfit(tilt[:, axis], turn[:, axis], 1)[0] for axis in range(3)]
    print(
        f"rotation command vs tilt over {len(tilt)} steps: slope (x, y, z) "
        f"{np.array(slopes)} per rad; tilt std {tilt.std(axis=0)} rad"
    )


def missed(obs: dict, object_key: str, trace: list[tuple[dict, np.ndarray]]) -> bool:
    """Fingers closed on nothing (a held Lift cube keeps them ~4 cm apart) while the
    object is still within 1 cm of its height at the episode's start."""
    start_height = (trace[0][0] if trace else obs)[f"{object_key}_pos"][2]
    return gripper_gap(obs) < 0.01 and obs[f"{object_key}_pos"][2] < start_height + 0.01


def tilt_from(start: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """The rotation from `start` to `quat` (robosuite's xyzw) as an axis-angle vector."""
    # Imported here: robosuite imports mujoco, which must come after vismanip's choice of
    # a headless GL backend (VisionEnv makes it).
    import robosuite.utils.transform_utils as transforms

    relative = transforms.quat_multiply(quat, transforms.quat_inverse(start))
    return transforms.quat2axisangle(relative if relative[3] >= 0 else -relative)  # q ~ -q


if __name__ == "__main__":
    main()
