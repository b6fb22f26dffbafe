"""Augmentation: both backends keep shapes, agree on what a shift does, share draws across
cameras when asked, and presets load from their files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vismanip.algos.bc import TrainConfig
from vismanip.config import load_config
from vismanip.errors import VismanipError
from vismanip.sim2real.augmentation import (
    AugmentationConfig,
    KorniaAugment,
    albumentations_pipeline,
)

PRESETS = sorted(Path("configs/augmentation").glob("*.yaml"))
SIZE = 32
KEYS = ["agentview_image", "robot0_eye_in_hand_image"]


def _preset(path: Path) -> AugmentationConfig:
    return load_config(TrainConfig, None, [f"augmentation={path}"]).augmentation


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _is_replicate_shift(out: np.ndarray, image: np.ndarray, pad: int) -> bool:
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return any(
        np.array_equal(out, padded[dy : dy + SIZE, dx : dx + SIZE])
        for dy in range(2 * pad + 1)
        for dx in range(2 * pad + 1)
    )


def test_presets_exist_and_load():
    assert {p.stem for p in PRESETS} == {
        "none",
        "light",
        "strong",
        "sim2real",
        "overlay",
        "fda",
        "random_conv",
        "visual_shift",
    }
    strong = _preset(Path("configs/augmentation/strong.yaml"))
    assert strong.erasing_prob > 0 and strong.crop_scale < 1
    assert _preset(Path("configs/augmentation/sim2real.yaml")).same_across_cameras
    shift = _preset(Path("configs/augmentation/visual_shift.yaml"))
    assert shift.overlay_prob > 0 and shift.random_conv_prob > 0 and shift.perspective > 0
    with pytest.raises(VismanipError, match="config file not found"):
        load_config(TrainConfig, None, ["augmentation=configs/augmentation/nope.yaml"])


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_both_backends_keep_shape_and_dtype(path):
    config = _preset(path)
    batch = torch.from_numpy(np.stack([_image(i) for i in range(4)])).permute(0, 3, 1, 2) / 255.0
    if config.backend != "albumentations":  # presets that pin the CPU backend skip kornia
        kornia = KorniaAugment(config, SIZE, num_cameras=1)
        out = kornia(batch.clone())
        assert out.shape == batch.shape and out.dtype == torch.float32
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    sample = albumentations_pipeline(config, SIZE, KEYS)
    images = {key: _image(i) for i, key in enumerate(KEYS)}
    augmented = sample(images) if sample else images
    for key in KEYS:
        assert augmented[key].shape == (SIZE, SIZE, 3) and augmented[key].dtype == np.uint8
    if path.stem == "none":
        assert sample is None and torch.equal(out, batch)


def test_a_pure_shift_moves_pixels_the_same_way_in_both_backends():
    config = AugmentationConfig(shift_pad=3)
    image = _image(1)
    sample = albumentations_pipeline(config, SIZE, KEYS[:1])
    kornia = KorniaAugment(config, SIZE, num_cameras=1)
    batch = torch.from_numpy(np.stack([image] * 16)).permute(0, 3, 1, 2).float() / 255.0
    shifted = (kornia(batch) * 255.0).round().byte().permute(0, 2, 3, 1).numpy()
    for k in range(16):
        assert _is_replicate_shift(shifted[k], image, 3)
        assert _is_replicate_shift(sample({KEYS[0]: image})[KEYS[0]], image, 3)
    assert len({s.tobytes() for s in shifted}) > 1  # drawn per sample, not per batch


def test_draws_are_shared_across_cameras_only_when_asked():
    image = _image(2)
    for shared in (True, False):
        config = AugmentationConfig(shift_pad=4, brightness=0.4, same_across_cameras=shared)
        out = albumentations_pipeline(config, SIZE, KEYS)({key: image for key in KEYS})
        assert np.array_equal(out[KEYS[0]], out[KEYS[1]]) == shared
        kornia = KorniaAugment(config, SIZE, num_cameras=2)
        batch = torch.from_numpy(np.stack([image] * 4)).permute(0, 3, 1, 2) / 255.0
        first, second = kornia(batch.clone()), kornia(batch.clone())
        assert torch.equal(first, second) == shared


def test_bad_backend_is_one_clear_error():
    with pytest.raises(VismanipError, match="augmentation.backend must be one of"):
        AugmentationConfig(backend="opencv").check()


def test_overlay_blends_in_a_training_photo_in_both_backends():
    from vismanip.sim2real.augmentation import training_photos

    photos = training_photos(SIZE).astype(np.float32)
    config = AugmentationConfig(shift_pad=0, overlay_prob=1.0, overlay_alpha=0.5)
    image = _image(3)
    out = albumentations_pipeline(config, SIZE, KEYS[:1])({KEYS[0]: image})[KEYS[0]]
    photo = (out.astype(np.float32) - 0.5 * image) / 0.5  # what was blended in
    assert min(np.abs(photo - p).max() for p in photos) <= 2.0
    kornia = KorniaAugment(config, SIZE, num_cameras=1)
    batch = torch.from_numpy(np.stack([image] * 8)).permute(0, 3, 1, 2).float() / 255.0
    blended = ((kornia(batch) * 255.0 - 0.5 * batch * 255.0) / 0.5).permute(0, 2, 3, 1).numpy()
    for row in blended:
        assert min(np.abs(row - p).max() for p in photos) <= 1e-3
    assert len({row.round().tobytes() for row in blended}) > 1  # a photo drawn per sample


def test_fda_moves_colours_towards_a_photo_and_needs_the_cpu_backend():
    config = AugmentationConfig(shift_pad=0, fda_prob=1.0, fda_beta=0.3)
    image = np.full((84, 84, 3), 128, np.uint8)
    pipeline = albumentations_pipeline(config, 84, KEYS[:1], seed=0)
    outs = [pipeline({KEYS[0]: image})[KEYS[0]] for _ in range(5)]
    assert all(out.shape == image.shape and out.dtype == np.uint8 for out in outs)
    # (a beta drawn below one pixel of the spectrum changes nothing: most draws do change it)
    assert sum(not np.array_equal(out, image) for out in outs) >= 3
    with pytest.raises(VismanipError, match="backend=albumentations") as error:
        KorniaAugment(config, SIZE, num_cameras=1)
    assert "\n" not in str(error.value)


def test_random_convolution_is_the_same_operation_in_both_backends():
    config = AugmentationConfig(shift_pad=0, random_conv_prob=1.0)
    cpu_op = albumentations_pipeline(config, SIZE, KEYS[:1]).compose.transforms[0]
    kornia_op = KorniaAugment(config, SIZE, num_cameras=1).pipeline[0]
    image = _image(4)
    batch = torch.from_numpy(image[None]).permute(0, 3, 1, 2).float() / 255.0
    identity = np.zeros((3, 3, 3, 3))
    identity[range(3), range(3), 1, 1] = 1.0  # each output channel copies its input
    assert np.array_equal(cpu_op.apply(image, kernel=identity), image)
    kernel = np.random.default_rng(0).normal(0, 0.2, (3, 3, 3, 3)) + identity
    on_cpu = cpu_op.apply(image, kernel=kernel)
    on_batch = kornia_op.apply_transform(batch, {"kernel": torch.from_numpy(kernel)[None]}, {})
    on_batch = (on_batch[0].permute(1, 2, 0) * 255.0).round().numpy()
    assert np.abs(on_cpu.astype(float) - on_batch).max() <= 1.0  # rounding only
    assert not np.array_equal(on_cpu, image)
    drawn = KorniaAugment(config, SIZE, num_cameras=1)(batch.expand(4, -1, -1, -1).clone())
    assert len({row.numpy().tobytes() for row in drawn}) > 1  # a kernel drawn per sample
