"""One emitter module per primitive family (registry: backends/tvm/emitters.py)."""
