"""A small, fast Transformer machine-translation trainer (Vaswani et al., 2017)."""

__version__ = "0.1.0"
