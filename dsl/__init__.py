"""livc.dsl: the .liv language — grammar, source spans, AST, parser, formatter, diagnostics."""
