"""livc.backends.pytorch: generate a standalone, readable PyTorch module from the IR."""
