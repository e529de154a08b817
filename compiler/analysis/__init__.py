"""livc.compiler.analysis: static costs (parameters, FLOPs, caches, activations) as abstract interpretation."""
