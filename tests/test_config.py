from pathlib import Path

import pytest

from vismanip.config import load_config, run_metadata
from vismanip.data.collect import CollectConfig
from vismanip.errors import VismanipError


def test_defaults_yaml_flags_and_overrides_layer_in_order(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("episodes: 7\nenv:\n  task: pick_place_can\n  image_size: 64\n")
    config = load_config(
        CollectConfig,
        yaml_file,
        overrides=["env.image_size=32", "env.render.robot_meshes=visual", "env.cameras=[a,b]"],
        flag_values={"episodes": 9, "seed": None},
    )
    assert config.episodes == 9  # flag beats YAML
    assert config.env.task == "pick_place_can"  # YAML beats default
    assert config.env.image_size == 32  # override beats YAML
    assert config.env.render.robot_meshes == "visual"
    assert config.env.cameras == ["a", "b"]
    assert config.seed == 0  # unset flag keeps the default


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["env.colour=red"], "colour"),
        (["episodes=many"], "episodes"),
        (["episodes"], "not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(VismanipError, match=message):
        load_config(CollectConfig, None, overrides)


def test_missing_and_malformed_yaml(tmp_path):
    with pytest.raises(VismanipError, match="config file not found"):
        load_config(CollectConfig, tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("episodes: [1,\n")
    with pytest.raises(VismanipError, match="not valid YAML"):
        load_config(CollectConfig, bad)


def test_run_metadata_records_config_seed_and_revision():
    import json

    meta = json.loads(run_metadata(CollectConfig(episodes=3), seed=3))
    assert meta["config"]["episodes"] == 3 and meta["seed"] == 3
    assert meta["git_revision"]


def test_a_list_for_a_text_field_means_its_items(tmp_path):
    """`data=[a.hdf5,b.hdf5]` (and a YAML list) train on several files, like "a.hdf5,b.hdf5"."""
    from vismanip.algos.bc import TrainConfig

    config = load_config(TrainConfig, None, ["data=[a.hdf5,b.hdf5]", "policy.cameras=[agentview]"])
    assert config.data == "a.hdf5,b.hdf5" and config.policy.cameras == ["agentview"]
    path = tmp_path / "bc.yaml"
    path.write_text("data: [x.hdf5, y.hdf5]\n")
    assert load_config(TrainConfig, path).data == "x.hdf5,y.hdf5"


def _shipped_presets() -> list:
    from vismanip.algos.bc import TrainConfig
    from vismanip.algos.dagger import DaggerConfig
    from vismanip.algos.gail.configuration import GailConfig
    from vismanip.sim2real.augmentation import AugmentationConfig

    schemas = {
        "bc": TrainConfig,
        "collect": CollectConfig,
        "dagger": DaggerConfig,
        "gail": GailConfig,
        "augmentation": AugmentationConfig,
    }
    return [
        pytest.param(schema, path, id=str(path))
        for folder, schema in schemas.items()
        for path in sorted(Path("configs", folder).glob("*.yaml"))
    ]


@pytest.mark.parametrize("schema, path", _shipped_presets())
def test_every_shipped_preset_resolves_against_its_schema(schema, path):
    """A typo in a preset a user copies would otherwise only surface when they run it."""
    config = load_config(schema, path)
    assert isinstance(config, schema)
