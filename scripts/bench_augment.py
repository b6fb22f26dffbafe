"""Images/s of the two augmentation backends on the same ops, side by side in one run.

    python scripts/bench_augment.py                 # every preset, 84x84, batch 64
    python scripts/bench_augment.py --size 128 --rounds 20

kornia augments a float batch (B, 3, S, S) on a device (CPU here; CUDA too when present);
albumentations augments uint8 (S, S, 3) samples one by one on the CPU, as the data loader
does. Both count the conversion they need (uint8 <-> float) so the figures compare what a
training step pays. Rounds are interleaved so that background load hits both alike.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vismanip.algos.bc import TrainConfig
from vismanip.config import load_config
from vismanip.sim2real.augmentation import KorniaAugment, albumentations_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--presets", default="light,strong,sim2real")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"# {args.size}x{args.size}, batch {args.batch}, {torch.get_num_threads()} threads, "
        f"median of {args.rounds} interleaved rounds\n"
    )
    print("| preset | backend | device | images/s | vs albumentations |")
    print("|---|---|---|---:|---:|")
    for preset in args.presets.split(","):
        path = Path("configs/augmentation") / f"{preset}.yaml"
        config = load_config(TrainConfig, None, [f"augmentation={path}"]).augmentation
        per_sample = albumentations_pipeline(config, args.size, ["image"])

        def albumentations_batch(per_sample=per_sample) -> None:
            for image in images:
                per_sample({"image": image})

        runs = {("albumentations", "cpu"): albumentations_batch}
        for device in devices:
            kornia = KorniaAugment(config, args.size, num_cameras=1)
            batch = torch.from_numpy(images).to(device)

            def kornia_batch(kornia=kornia, batch=batch, device=device) -> None:
                out = kornia(batch.permute(0, 3, 1, 2).float() / 255.0)
                if device == "cuda":
                    torch.cuda.synchronize()
                del out

            runs[("kornia", device)] = kornia_batch
        times: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
        for run in runs.values():  # warm-up
            run()
        for _ in range(args.rounds):
            for key, run in runs.items():
                start = time.perf_counter()
                run()
                times[key].append(time.perf_counter() - start)
        rate = {key: args.batch / float(np.median(values)) for key, values in times.items()}
        reference = rate[("albumentations", "cpu")]
        for (backend, device), value in rate.items():
            print(f"| {preset} | {backend} | {device} | {value:.0f} | {value / reference:.2f}x |")


if __name__ == "__main__":
    main()
