"""faceedit-bench: face attribute editing GANs trained and evaluated under one recorded protocol."""

__version__ = "0.1.0"
