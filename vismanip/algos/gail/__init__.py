"""GAIL: adversarial imitation (discriminator reward + off-policy RL) from a BC policy.

The entry point is `vismanip.algos.gail.run.gail`. This package file imports nothing:
rollout workers unpickle `rollouts.GailEpisode` from here, and they must not load
tensordict/torchrl (their triton import segfaults in a process that already loaded Mesa's
LLVM for rendering).
"""
