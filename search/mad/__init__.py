"""The six MAD synthetic tasks (Poli et al. 2024), generated locally from seeded generators."""
