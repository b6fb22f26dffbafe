"""Named sets of evaluation splits: the scenes `vismanip eval --shift/--suite` runs a policy in.

A split is an env config plus an optional scene randomization. Every split runs the same
episode seeds, so the object's starting place is shared and splits differ only in what
they change (objects, clutter, looks).
"""

from __future__ import annotations

from dataclasses import replace

from vismanip.envs.objects import object_set
from vismanip.envs.tasks import EnvConfig
from vismanip.errors import VismanipError
from vismanip.sim2real.randomization import SHIFT_SPLITS, RandomizationConfig, shift_config

Split = tuple[EnvConfig, RandomizationConfig | None]
SUITES = ("generalization",)


def shift_splits(env_config: EnvConfig, names: list[str]) -> dict[str, Split]:
    """The visual-shift splits by name (none, unseen-textures, lighting, camera, all)."""
    return {name: (env_config, shift_config(name)) for name in names}


def generalization_splits(env_config: EnvConfig) -> dict[str, Split]:
    """Seen objects, novel objects, clutter 2 and 4, and the visual-shift splits.

    Seen is the scene the policy was trained in (its objects, no clutter). Novel is the
    `novel` object set minus anything seen. Clutter adds distractors to the seen objects.
    """
    seen = replace(env_config, clutter=0)
    trained_on = set(env_config.objects) or {"cube"}
    novel = [name for name in object_set("novel") if name not in trained_on]
    if not novel:
        raise VismanipError("every object of the novel set was seen in training")
    splits: dict[str, Split] = {
        "seen": (seen, None),
        "novel": (replace(seen, objects=novel), None),
        "clutter_2": (replace(seen, clutter=2), None),
        "clutter_4": (replace(seen, clutter=4), None),
    }
    splits.update({name: (seen, shift_config(name)) for name in SHIFT_SPLITS})
    return splits


def suite_splits(name: str, env_config: EnvConfig) -> dict[str, Split]:
    if name != "generalization":
        raise VismanipError(f"unknown suite {name!r}; valid: {', '.join(SUITES)}")
    splits = generalization_splits(env_config)
    for split_env, _ in splits.values():
        split_env.check()  # e.g. clutter on a task without object sets: one line, up front
    return splits
