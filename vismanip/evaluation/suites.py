"""Named sets of evaluation splits: the scenes `vismanip eval --shift/--suite` runs a policy in.

A split is a Scene: an env config plus an optional randomization of its looks. Every split runs the same
episode seeds, so the object's starting place is shared and splits differ only in what
they change (objects, clutter, looks).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vismanip.envs.objects import object_set
from vismanip.envs.tasks import EnvConfig
from vismanip.errors import VismanipError
from vismanip.rollout.runner import Scene
from vismanip.sim2real.randomization import RandomizationConfig

SUITES = ("generalization",)

# Each visual shift is a randomization preset; "all" combines them.
SHIFT_DIR = Path(__file__).resolve().parents[2] / "configs" / "randomization" / "shift"
SHIFT_SPLITS = ("unseen-textures", "lighting", "camera")
SHIFT_NAMES = ("none", *SHIFT_SPLITS, "all")


def shift_config(name: str) -> RandomizationConfig | None:
    """The scene changes of an evaluation split; None for "none" (the nominal scene).

    "all" combines every split (their settings do not overlap).
    """
    from omegaconf import OmegaConf

    if name not in SHIFT_NAMES:
        raise VismanipError(f"unknown shift {name!r}; valid: {', '.join(SHIFT_NAMES)}")
    if name == "none":
        return None
    splits = SHIFT_SPLITS if name == "all" else (name,)
    files = [OmegaConf.load(SHIFT_DIR / f"{split}.yaml") for split in splits]
    merged = OmegaConf.merge(OmegaConf.structured(RandomizationConfig), *files)
    config: RandomizationConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    config.check(allow_heldout=True)
    return config


def shift_splits(env_config: EnvConfig, names: list[str]) -> dict[str, Scene]:
    """The visual-shift splits by name (none, unseen-textures, lighting, camera, all)."""
    return {name: Scene(env_config, shift_config(name)) for name in names}


def generalization_splits(env_config: EnvConfig) -> dict[str, Scene]:
    """Seen objects, novel objects, clutter 2 and 4, and the visual-shift splits.

    Seen is the scene the policy was trained in (its objects, no clutter). Novel is the
    `novel` object set minus anything seen. Clutter adds distractors to the seen objects.
    """
    seen = replace(env_config, clutter=0)
    trained_on = set(env_config.objects) or {"cube"}
    novel = [name for name in object_set("novel") if name not in trained_on]
    if not novel:
        raise VismanipError("every object of the novel set was seen in training")
    splits: dict[str, Scene] = {
        "seen": Scene(seen),
        "novel": Scene(replace(seen, objects=novel)),
        "clutter_2": Scene(replace(seen, clutter=2)),
        "clutter_4": Scene(replace(seen, clutter=4)),
    }
    splits.update({name: Scene(seen, shift_config(name)) for name in SHIFT_SPLITS})
    return splits


def suite_splits(
    name: str, env_config: EnvConfig, only: list[str] | None = None
) -> dict[str, Scene]:
    """The suite's splits; with `only`, just those (e.g. seen, novel, clutter_4: a third of
    the generalization suite's episodes)."""
    if name != "generalization":
        raise VismanipError(f"unknown suite {name!r}; valid: {', '.join(SUITES)}")
    splits = generalization_splits(env_config)
    if only:
        unknown = [split for split in only if split not in splits]
        if unknown:
            raise VismanipError(
                f"unknown split {unknown[0]!r} of suite {name}; valid: {', '.join(splits)}"
            )
        splits = {split: splits[split] for split in only}
    for scene in splits.values():
        scene.env.check()  # e.g. clutter on a task without object sets: one line, up front
    return splits
