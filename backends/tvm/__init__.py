"""The TVM backend: livc IR -> Relax (BlockBuilder) -> compiled CPU libraries (docs/tvm.md)."""
