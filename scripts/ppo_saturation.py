"""How PPO's log-probabilities behave at a BC policy's saturated commands.

PPO (`learner.type=ppo`) draws u = mean + std * noise before the tanh, acts with
tanh(u) and keeps that action as float32. Its log-probability is later taken back
through atanh of the stored action, clamped inside (-1, 1). Where |u| is large, float32
rounds tanh(u) to +-1 and the clamp puts every such draw at the same u (atanh(1 - 1e-6)
= 7.25), far from where it was drawn: a tiny move of the mean then changes its
log-probability a lot. This prints, on the demos' states, each action dimension's
pre-tanh means, the share of draws that lose their u this way, and the approximate KL
(PPO's `kl_approx`, mean of (ratio - 1) - log ratio) that one small shift of the mean
gives, with the log-probabilities taken back from the stored actions and at the true u.

    python scripts/ppo_saturation.py runs/gail_exp/bc60/last.ckpt data/gail/lift_clean_60.hdf5 --std 1.0
"""

from __future__ import annotations

import argparse

import h5py
import torch
from torch.distributions import Normal

from vismanip.policies.checkpoint import load_policy

EPS = 1e-6  # as PpoGailLearner.prepare's clamp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("demos")
    parser.add_argument("--demos-read", type=int, default=10, help="demos whose states to use")
    parser.add_argument("--std", type=float, default=1.0, help="exploration std before the tanh")
    parser.add_argument("--shift", type=float, default=0.01, help="move of the mean per dim")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    policy = load_policy(args.checkpoint).weights.build().eval()
    means = []
    with h5py.File(args.demos, "r") as file, torch.no_grad():
        for name in sorted(file["data"], key=lambda n: int(n.split("_")[1]))[: args.demos_read]:
            obs = file[f"data/{name}/obs"]
            batch = {
                k: torch.as_tensor(obs[k][()]) for k in (*policy.image_keys, *policy.lowdim_keys)
            }
            means.append(policy.action_mean(policy.encode(batch)))
    mean = torch.cat(means).double()
    generator = torch.Generator().manual_seed(args.seed)
    drawn = mean + args.std * torch.randn(mean.shape, generator=generator, dtype=torch.float64)
    stored = torch.tanh(drawn).float().double()  # what the replay keeps
    recovered = torch.atanh(stored.clamp(-1 + EPS, 1 - EPS))
    lost = (recovered - drawn).abs() > 0.05
    moved = mean + args.shift

    def kl_approx(u: torch.Tensor, joint: bool = False) -> torch.Tensor:
        """As ClipPPOLoss: the mean of (r - 1) - log r, r the new/old ratio, per dimension
        or of the whole action (`joint`)."""
        log_ratio = Normal(moved, args.std).log_prob(u) - Normal(mean, args.std).log_prob(u)
        if joint:
            log_ratio = log_ratio.sum(-1)
        return (log_ratio.exp() - 1 - log_ratio).mean(0)

    print(f"{len(mean)} demo states, std {args.std} before the tanh, mean shifted by {args.shift}")
    print("dim | pre-tanh mean: median |.|, 99th pct |.|, max |.| | draws whose u is lost | "
          "approx KL from stored actions | at the true u")  # fmt: skip
    from_stored, at_true = kl_approx(recovered), kl_approx(drawn)
    for dim in range(mean.shape[1]):
        size = mean[:, dim].abs()
        print(
            f"{dim} | {size.median():.2f}, {size.quantile(0.99):.2f}, {size.max():.2f} "
            f"| {lost[:, dim].double().mean():.1%} | {from_stored[dim]:.2e} | {at_true[dim]:.2e}"
        )
    print(
        f"whole action | | | {kl_approx(recovered, joint=True):.2e} "
        f"| {kl_approx(drawn, joint=True):.2e}"
    )


if __name__ == "__main__":
    main()
