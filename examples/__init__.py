"""livc.examples: example architectures shipped with livc (see *.liv in this package)."""
