"""vismanip: vision-based robot manipulation learned from demonstrations."""

__version__ = "0.1.0"
