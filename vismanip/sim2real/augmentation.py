"""Image augmentation: one description, two backends.

`AugmentationConfig` says what to do (shift, crop-resize, colour jitter, blur, noise,
erasing, perspective, photo overlay, Fourier style transfer, random convolution). It builds
either a kornia pipeline, which augments a float batch (B, 3, H, W) on the training device,
or an albumentations pipeline, which augments uint8 (H, W, 3) samples on the CPU inside the
data loader. `backend: auto` picks albumentations on CPU and kornia on GPU, as
`scripts/bench_augment.py` measured (see the README).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vismanip.errors import VismanipError

BACKENDS = ("auto", "kornia", "albumentations")


@dataclass
class AugmentationConfig:
    """What to do to training images; 0 turns an op off. Presets: configs/augmentation/.

    shift_pad: random shift by up to this many pixels (replicate-pad, then random crop),
        DrQ-style, drawn per sample.
    crop_scale: random resized crop keeping this fraction of the area or more (1: off).
    brightness, contrast, saturation, hue: colour jitter strengths (factors 1 ± x; hue ± x).
    blur_sigma: Gaussian blur with sigma up to this (pixels), with probability blur_prob.
    noise_std: additive Gaussian noise, std in [0, 1] image units.
    erasing_prob: probability of erasing one random rectangle (cutout).
    perspective: perspective distortion scale, applied with probability 0.5.
    overlay_prob, overlay_alpha: with this probability, blend the image with a random
        training photo, (1 - alpha) * image + alpha * photo: SODA's overlay (Hansen & Wang
        2021), with our texture photos (assets/textures/photos; never the held-out ones).
    fda_prob, fda_beta: with this probability, give the image a training photo's colour
        and lighting by swapping its lowest-frequency Fourier amplitudes (FDA, Yang & Soatto
        2020; albumentations' op), up to `fda_beta` of the spectrum. CPU backend only.
    random_conv_prob: with this probability, pass the image through a freshly drawn random
        3x3 convolution, 3 -> 3 channels (Lee et al. 2020, "network randomization"): new
        colours, textures and contrast while shapes stay where they are.
    same_across_cameras: every camera of a sample gets the same draws (e.g. the same
        lighting change); otherwise each camera draws its own.
    backend: auto | kornia | albumentations.
    """

    shift_pad: int = 4
    crop_scale: float = 1.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    blur_sigma: float = 0.0
    blur_prob: float = 0.3
    noise_std: float = 0.0
    erasing_prob: float = 0.0
    perspective: float = 0.0
    overlay_prob: float = 0.0
    overlay_alpha: float = 0.5
    fda_prob: float = 0.0
    fda_beta: float = 0.05
    random_conv_prob: float = 0.0
    same_across_cameras: bool = False
    backend: str = "auto"

    def check(self) -> None:
        if self.backend not in BACKENDS:
            raise VismanipError(
                f"augmentation.backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}"
            )
        if self.shift_pad < 0 or not 0 < self.crop_scale <= 1 or self.hue > 0.5:
            raise VismanipError(
                "augmentation: shift_pad >= 0, 0 < crop_scale <= 1 and hue <= 0.5 required"
            )
        if not (0 <= self.overlay_alpha <= 1 and 0 < self.fda_beta <= 0.5):
            raise VismanipError(
                "augmentation: 0 <= overlay_alpha <= 1 and 0 < fda_beta <= 0.5 required"
            )

    def resolved_backend(self, accelerator: str) -> str:
        """auto: albumentations in the CPU data loader, kornia on a GPU (measured faster)."""
        if self.backend != "auto":
            return self.backend
        return "albumentations" if accelerator == "cpu" else "kornia"


def _jitter(config: AugmentationConfig) -> bool:
    return any(v > 0 for v in (config.brightness, config.contrast, config.saturation, config.hue))


# Random convolution kernels are drawn as Lee et al. draw them: Xavier normal for a 3x3 conv,
# 3 -> 3 channels, std sqrt(2 / (fan_in + fan_out)) = sqrt(1 / 27).
RANDOM_CONV_STD = (1.0 / 27.0) ** 0.5


def training_photos(size: int) -> np.ndarray:
    """(N, size, size, 3) uint8: the texture photos domain randomization may use, which the
    overlay and FDA blend in. The held-out photos stay unseen for the evaluation splits."""
    import cv2

    from vismanip.sim2real.randomization import texture_image, texture_names

    return np.stack(
        [
            cv2.resize(texture_image(name, 0), (size, size), interpolation=cv2.INTER_AREA)
            for name in texture_names("photos")
        ]
    )


# --------------------------------------------------------------------------- kornia (batch)


def kornia_pipeline(config: AugmentationConfig, size: int) -> torch.nn.Module | None:
    """float (B, 3, S, S) in [0, 1] -> same; None when the config does nothing."""
    import kornia.augmentation as K

    ops: list[Any] = []  # kornia augmentations
    if config.crop_scale < 1:
        ops.append(K.RandomResizedCrop((size, size), scale=(config.crop_scale, 1.0)))
    if config.shift_pad > 0:
        ops.append(K.RandomCrop((size, size), padding=config.shift_pad, padding_mode="replicate"))
    if config.perspective > 0:
        ops.append(K.RandomPerspective(config.perspective, p=0.5))
    if _jitter(config):
        ops.append(
            K.ColorJitter(config.brightness, config.contrast, config.saturation, config.hue, p=1.0)
        )
    if config.blur_sigma > 0:
        kernel = 2 * int(np.ceil(2 * config.blur_sigma)) + 1
        ops.append(K.RandomGaussianBlur(kernel, (0.1, config.blur_sigma), p=config.blur_prob))
    if config.noise_std > 0:
        ops.append(K.RandomGaussianNoise(std=config.noise_std, p=1.0))
    if config.erasing_prob > 0:
        ops.append(K.RandomErasing(p=config.erasing_prob))
    if config.overlay_prob > 0:
        ops.append(_kornia_overlay(config, size))
    if config.random_conv_prob > 0:
        ops.append(_kornia_random_conv(config.random_conv_prob))
    if config.fda_prob > 0:
        raise VismanipError(
            "augmentation.fda_prob runs on the CPU backend only (albumentations' FDA); "
            "set augmentation.backend=albumentations"
        )
    if not ops:
        return None
    return K.AugmentationSequential(*ops)


def _kornia_overlay(config: AugmentationConfig, size: int) -> Any:
    """The photo overlay as a kornia op, so AugmentationSequential draws, applies with
    probability and replays it (shared draws across cameras) like its own ops. Hand-written:
    kornia's mixing ops mix images of the batch with each other, not with outside photos."""
    import kornia.augmentation as K

    photos = torch.from_numpy(training_photos(size)).permute(0, 3, 1, 2).float() / 255.0

    class RandomPhotoOverlay(K.IntensityAugmentationBase2D):
        def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
            return {"photo": torch.randint(len(photos), (batch_shape[0],))}

        def apply_transform(
            self, input: Tensor, params: dict, flags: dict, transform: Tensor | None = None
        ) -> Tensor:
            chosen = photos.to(input)[params["photo"].to(input.device)]
            return (1 - config.overlay_alpha) * input + config.overlay_alpha * chosen

    return RandomPhotoOverlay(p=config.overlay_prob)


class KorniaAugment:
    """The policy's `image_transform` hook: float (B, 3, S, S) batches, one call per camera.

    A plain callable, not an nn.Module: it has no state to checkpoint.
    """

    def __init__(self, config: AugmentationConfig, size: int, num_cameras: int) -> None:
        self.pipeline = kornia_pipeline(config, size)
        self.same_across_cameras = config.same_across_cameras
        self.num_cameras = num_cameras
        self._camera = 0

    def __call__(self, images: Tensor) -> Tensor:
        if self.pipeline is None:
            return images
        # The policy calls this once per camera, in camera order: with shared draws, the
        # first camera of each batch draws and the others replay its parameters.
        if self.same_across_cameras and self._camera > 0:
            out = self.pipeline(images, params=self.pipeline._params)
        else:
            out = self.pipeline(images)
        self._camera = (self._camera + 1) % self.num_cameras
        return out.clamp(0.0, 1.0)


def _kornia_random_conv(p: float) -> Any:
    """Random convolution as a kornia op: one kernel per sample, applied as a grouped conv.
    Hand-written: neither kornia nor albumentations has it."""
    import kornia.augmentation as K

    class RandomConvolution(K.IntensityAugmentationBase2D):
        def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
            return {"kernel": RANDOM_CONV_STD * torch.randn(batch_shape[0], 3, 3, 3, 3)}

        def apply_transform(
            self, input: Tensor, params: dict, flags: dict, transform: Tensor | None = None
        ) -> Tensor:
            batch, _, height, width = input.shape
            kernels = params["kernel"].to(input).flatten(0, 1)  # (B * 3, 3, 3, 3)
            padded = torch.nn.functional.pad(input, (1, 1, 1, 1), mode="replicate")
            out = torch.nn.functional.conv2d(
                padded.reshape(1, batch * 3, height + 2, width + 2), kernels, groups=batch
            )
            return out.view(batch, 3, height, width).clamp(0.0, 1.0)

    return RandomConvolution(p=p)


# --------------------------------------------------------------------------- albumentations


class SampleAugmentation:
    """{image_key: uint8 (S, S, 3)} -> same, for one sample (albumentations, in the loader).

    It draws from its own generator, seeded: training seeds it with `seed + rank`, so DDP
    ranks draw different shifts and a run is reproducible.
    """

    def __init__(
        self, compose: Any, image_keys: list[str], together: bool, fda_photos: list | None = None
    ) -> None:
        self.compose = compose
        self.image_keys = image_keys
        self.together = together  # one draw for all cameras (additional targets)
        # FDA's reference photos travel with every call (albumentations' metadata key)
        self.extra = {"fda_metadata": fda_photos} if fda_photos else {}

    def __call__(self, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.together:
            return {
                key: self.compose(image=image, **self.extra)["image"]
                for key, image in images.items()
            }
        first = self.image_keys[0]
        renamed = {"image" if k == first else k: v for k, v in images.items()}
        out = self.compose(**renamed, **self.extra)
        return {key: out["image" if key == first else key] for key in self.image_keys}

    def reseed(self, seed: int) -> None:
        self.compose.set_random_seed(seed)


def _albumentations_overlay(photos: list[np.ndarray], alpha: float, p: float) -> Any:
    """The photo overlay as an albumentations op (seeded with the pipeline, replayed on
    every camera with shared draws). Hand-written: albumentations 2 has no op that blends in
    an outside image (FDA and HistogramMatching move only colour statistics)."""
    import albumentations as A

    class PhotoOverlay(A.ImageOnlyTransform):
        def get_params(self) -> dict[str, int]:
            return {"photo": self.py_random.randrange(len(photos))}

        def apply(self, img: np.ndarray, photo: int = 0, **params: Any) -> np.ndarray:
            blended = (1 - alpha) * img.astype(np.float32) + alpha * photos[photo]
            return np.clip(blended.round(), 0, 255).astype(np.uint8)

    return PhotoOverlay(p=p)


def _albumentations_random_conv(p: float) -> Any:
    """Random convolution as an albumentations op (see `_kornia_random_conv`)."""
    import albumentations as A
    import cv2

    class RandomConvolution(A.ImageOnlyTransform):
        def get_params(self) -> dict[str, np.ndarray]:
            return {"kernel": RANDOM_CONV_STD * self.random_generator.standard_normal((3, 3, 3, 3))}

        def apply(
            self, img: np.ndarray, kernel: np.ndarray | None = None, **params: Any
        ) -> np.ndarray:
            assert kernel is not None
            image = img.astype(np.float32) / 255.0
            out = np.stack(
                [
                    sum(
                        cv2.filter2D(
                            image[..., i],
                            -1,
                            kernel[o, i].astype(np.float32),
                            borderType=cv2.BORDER_REPLICATE,
                        )
                        for i in range(3)
                    )
                    for o in range(3)
                ],
                axis=-1,
            )
            return (np.clip(out, 0.0, 1.0) * 255.0).round().astype(np.uint8)

    return RandomConvolution(p=p)


def albumentations_pipeline(
    config: AugmentationConfig, size: int, image_keys: list[str], seed: int | None = None
) -> SampleAugmentation | None:
    """The per-sample CPU augmentation `config` asks for; None when it does nothing."""
    import albumentations as A
    import cv2

    ops: list = []
    if config.crop_scale < 1:
        ops.append(
            A.RandomResizedCrop((size, size), scale=(config.crop_scale, 1.0), ratio=(3 / 4, 4 / 3))
        )
    if config.shift_pad > 0:
        padded = size + 2 * config.shift_pad
        ops.append(A.PadIfNeeded(padded, padded, border_mode=cv2.BORDER_REPLICATE))
        ops.append(A.RandomCrop(size, size))
    if config.perspective > 0:
        ops.append(A.Perspective(scale=(0.0, config.perspective / 2), p=0.5))
    if _jitter(config):
        ops.append(
            A.ColorJitter(
                brightness=(max(0.0, 1 - config.brightness), 1 + config.brightness),
                contrast=(max(0.0, 1 - config.contrast), 1 + config.contrast),
                saturation=(max(0.0, 1 - config.saturation), 1 + config.saturation),
                hue=(-config.hue, config.hue),
                p=1.0,
            )
        )
    if config.blur_sigma > 0:
        ops.append(A.GaussianBlur(sigma_limit=(0.1, config.blur_sigma), p=config.blur_prob))
    if config.noise_std > 0:
        ops.append(A.GaussNoise(std_range=(config.noise_std, config.noise_std), p=1.0))
    if config.erasing_prob > 0:
        ops.append(
            A.CoarseDropout(
                num_holes_range=(1, 1),
                hole_height_range=(0.1, 0.5),
                hole_width_range=(0.1, 0.5),
                p=config.erasing_prob,
            )
        )
    photos = list(training_photos(size)) if config.overlay_prob or config.fda_prob else []
    if config.overlay_prob > 0:
        ops.append(_albumentations_overlay(photos, config.overlay_alpha, config.overlay_prob))
    if config.random_conv_prob > 0:
        ops.append(_albumentations_random_conv(config.random_conv_prob))
    if config.fda_prob > 0:
        ops.append(A.FDA(beta_limit=(0.0, config.fda_beta), read_fn=None, p=config.fda_prob))
    if not ops:
        return None
    together = config.same_across_cameras
    extra = {key: "image" for key in image_keys[1:]} if together else None
    return SampleAugmentation(
        A.Compose(ops, additional_targets=extra, seed=seed),
        image_keys,
        together,
        photos if config.fda_prob > 0 else None,
    )
