"""STAR-style evolutionary architecture search over .liv (docs/search.md)."""
