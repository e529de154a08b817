"""livc.compiler.elaboration: evaluating .liv values and elaborating models (the input of IR building)."""
