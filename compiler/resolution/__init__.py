"""livc.compiler.resolution: loading a program (files, imports), symbol tables and static name resolution."""
