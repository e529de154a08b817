"""livc.compiler: the meaning of .liv programs.

resolution/ (files, imports, names) -> elaboration/ (values, models) -> ir/ (typed IR, primitives)
-> passes/ (build, expand, canonicalize, lower) -> analysis/ (costs, budgets); check.py and pipeline.py drive them.
"""
