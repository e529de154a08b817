"""livc.compiler: name resolution, elaboration, IR, passes, costs, budgets, the CLI driver."""
