"""The six MAD synthetic tasks (Poli et al. 2024), generated locally from seeded generators.

setting (TaskSetting, IGNORE), one generator module per task (recall: in-context + noisy recall; fuzzy;
copying: selective copying; compression; memorization), tasks (the GENERATORS registry, setting checks,
cached seeded train/test datasets), metrics (macro accuracy as torchmetrics), readout (LM logits, or
MAD's auto-encoder for compression). Protocols live in search.protocol, training in search.train.
"""
