"""Training throughput (samples/s) of BC steps, side by side in one run.

For each encoder: with and without the random-shift augmentation, with the uint8 cache
on (every demo in memory) and off (every batch read from the HDF5 file).

    python scripts/bench_train.py --data data/lift.hdf5 --batches 30
"""

from __future__ import annotations

import argparse
import time

import torch

from vismanip.algos.bc import BCModule, TrainConfig
from vismanip.data.datamodule import DemoDataModule, LoaderConfig, dataset_shapes
from vismanip.policies import ImagePolicy, ImagePolicyConfig


def samples_per_second(
    data: str, encoder: str, shift: int, cache_gb: float, batches: int, batch_size: int
) -> float:
    image_size, lowdim_dims, cameras, _ = dataset_shapes(data)
    config = TrainConfig(
        data=data,
        random_shift_pad=shift,
        policy=ImagePolicyConfig(cameras=cameras, encoder=encoder),
    )
    policy = ImagePolicy(config.policy, image_size, lowdim_dims)
    module = BCModule(policy, config, env_config=None)
    loader = DemoDataModule(
        data,
        LoaderConfig(batch_size=batch_size, cache_gb=cache_gb),
        policy.image_keys + policy.lowdim_keys,
    )
    loader.setup()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    iterator = iter(loader.train_dataloader())

    def step() -> None:
        loss = module.training_step(next(iterator), 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    module.log = lambda *args, **kwargs: None  # no Trainer attached: logging is a no-op here
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(batches):
        step()
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    print(
        f"# {args.data}, batch {args.batch_size}, {torch.get_num_threads()} threads, {args.batches} steps each\n"
    )
    print("| encoder | augmentation | cache | samples/s |")
    print("|---|---|---|---:|")
    for encoder in ("compact", "resnet18"):
        for shift in (0, 4):
            for cache_gb in (4.0, 0.0):
                rate = samples_per_second(
                    args.data, encoder, shift, cache_gb, args.batches, args.batch_size
                )
                augmentation = f"random shift {shift}px" if shift else "none"
                print(
                    f"| {encoder} | {augmentation} | {'on' if cache_gb else 'off'} | {rate:.0f} |"
                )


if __name__ == "__main__":
    main()
