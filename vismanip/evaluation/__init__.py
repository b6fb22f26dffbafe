"""Rollouts in the simulator and (later) metrics and reports built on them."""
