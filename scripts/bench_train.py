"""Training throughput (samples/s) of BC steps, side by side in one run.

For each encoder: no augmentation, and the default random shift on each backend (kornia on
the batch, albumentations per sample in the loader), and the `sim2real` preset on each
backend; with the uint8 cache on (every demo in memory) and off (every batch read from the
HDF5 file); on each of `--devices` (the policy, the batch and kornia's augmentation on that
device); with each count of `--loader-workers` (loader processes; 0: the training process
gathers the batches). The last columns are the step time relative to no augmentation (when
`--augmentations` includes none) and, for a GPU, the speed relative to the CPU row of the
same encoder, cache, augmentation and loader processes.

    python scripts/bench_train.py --data data/lift.hdf5 --batches 30
    python scripts/bench_train.py --data data/lift.hdf5 --devices cpu,cuda --caches on
    python scripts/bench_train.py --data data/square.hdf5 --devices cuda --encoders compact \
        --caches on --loader-workers 0,4,8     # does the loader feed the GPU?
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml
from lightning.fabric.utilities.apply_func import move_data_to_device

from vismanip.algos.bc import BCModule, TrainConfig
from vismanip.data.datamodule import DemoDataModule, LoaderConfig, dataset_shapes
from vismanip.policies import ImagePolicy, ImagePolicyConfig
from vismanip.sim2real.augmentation import AugmentationConfig, albumentations_pipeline


def samples_per_second(
    data: str,
    encoder: str,
    augmentation: AugmentationConfig,
    cache_gb: float,
    batches: int,
    batch_size: int,
    device: str = "cpu",
    loader_workers: int = 0,
) -> float:
    image_size, lowdim_dims, cameras, _ = dataset_shapes(data)
    config = TrainConfig(
        data=data,
        augmentation=augmentation,
        policy=ImagePolicyConfig(cameras=cameras, encoder=encoder),
    )
    config.trainer.accelerator = "gpu" if device == "cuda" else "cpu"
    policy = ImagePolicy(config.policy, image_size, lowdim_dims)
    module = BCModule(policy, config, env_config=None).to(device)
    per_sample = augmentation.resolved_backend(config.trainer.accelerator) == "albumentations"
    loader = DemoDataModule(
        data,
        LoaderConfig(batch_size=batch_size, cache_gb=cache_gb, num_workers=loader_workers),
        policy.image_keys + policy.lowdim_keys,
        train_transform=(
            albumentations_pipeline(augmentation, image_size, policy.image_keys)
            if per_sample
            else None
        ),
    )
    loader.setup()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)

    def batches_forever() -> Iterator[dict]:  # a small dataset runs out of batches
        batches = loader.train_dataloader()  # one loader: its workers persist across epochs
        while True:
            yield from batches

    iterator = batches_forever()

    def step() -> None:
        batch = move_data_to_device(next(iterator), device)
        loss = module.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    module.log = lambda *args, **kwargs: None  # no Trainer attached: logging is a no-op here
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(batches):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--encoders", default="compact,resnet18")
    parser.add_argument("--devices", default="cpu", help="e.g. cpu,cuda")
    parser.add_argument("--caches", default="on,off", help="the uint8 cache: on, off or both")
    parser.add_argument("--loader-workers", default="0", help="loader processes, e.g. 0,4,8")
    parser.add_argument(
        "--augmentations",
        default="none,shift-kornia,shift-albumentations,sim2real-kornia,sim2real-albumentations",
        help="which augmentation rows, by name",
    )
    args = parser.parse_args()
    devices = args.devices.split(",")
    print(
        f"# {args.data}, batch {args.batch_size}, {torch.get_num_threads()} threads, {args.batches} steps each\n"
    )
    sim2real = yaml.safe_load(Path("configs/augmentation/sim2real.yaml").read_text())
    every_variant = {  # --augmentations name: (table label, config)
        "none": ("none", AugmentationConfig(shift_pad=0)),
        "shift-kornia": ("shift 4px, kornia", AugmentationConfig(backend="kornia")),
        "shift-albumentations": (
            "shift 4px, albumentations",
            AugmentationConfig(backend="albumentations"),
        ),
        "sim2real-kornia": (
            "sim2real, kornia",
            AugmentationConfig(**{**sim2real, "backend": "kornia"}),
        ),
        "sim2real-albumentations": (
            "sim2real, albumentations",
            AugmentationConfig(**{**sim2real, "backend": "albumentations"}),
        ),
    }
    unknown = set(args.augmentations.split(",")) - set(every_variant)
    if unknown:
        parser.error(
            f"unknown augmentation {sorted(unknown)[0]!r}; known: {', '.join(every_variant)}"
        )
    variants = dict(every_variant[name] for name in args.augmentations.split(","))
    if "cuda" in devices:
        print(f"# GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}\n")
    print(
        "| device | loader workers | encoder | cache | augmentation | samples/s "
        "| step time vs none | vs cpu |"
    )
    print("|---|---:|---|---|---|---:|---:|---:|")
    cpu_rates: dict[tuple[str, str, str, int], float] = {}
    for device, workers, encoder, cache in itertools.product(
        devices,
        [int(n) for n in args.loader_workers.split(",")],
        args.encoders.split(","),
        args.caches.split(","),
    ):
        baseline = None
        for label, augmentation in variants.items():
            rate = samples_per_second(
                args.data,
                encoder,
                augmentation,
                4.0 if cache == "on" else 0.0,
                args.batches,
                args.batch_size,
                device,
                workers,
            )
            if label == "none":
                baseline = rate
            key = (encoder, cache, label, workers)
            if device == "cpu":
                cpu_rates[key] = rate
            versus = f"{rate / cpu_rates[key]:.1f}x" if key in cpu_rates else "-"
            print(
                f"| {device} | {workers} | {encoder} | {cache} | {label} | {rate:.0f} "
                f"| {f'{baseline / rate:.2f}' if baseline else '-'} | {versus} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
