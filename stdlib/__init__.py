"""livc.stdlib: the operator library, written in .liv (see *.liv in this package)."""
