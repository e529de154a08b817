"""livc.compiler.passes: one pass per module, each `run(x, ctx) -> Model`."""
