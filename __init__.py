"""livc: a compiler for LIV sequence-model architectures."""

__version__ = "0.1.0"
