"""livc.backends: code generators that consume the IR (PyTorch, TVM)."""
