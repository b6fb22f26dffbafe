"""vismanip as other ecosystems see it: a Gymnasium env for RL libraries (SB3, torchrl, skrl)."""
