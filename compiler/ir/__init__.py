"""livc.compiler.ir: the typed LIV IR (nodes, symbolic sizes, text form, verifier)."""
