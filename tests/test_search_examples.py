"""The shipped search spaces (examples/search/*.toml) load, and their seed architectures lie in the space.

For every space file: `load_config` accepts it; every seed encodes to a genome whose decoded program
checks and is within the file's budgets (a seed outside them would be rejected, never trained); the gpu
space's seeds are what docs/search.md says (Transformer++ first, the hybrids at about half its cache).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from livc.compiler.check import check_source
from livc.search.codec import Codec
from livc.search.config import load_config
from livc.search.statics import static_costs

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "examples" / "search").glob("*.toml"))


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
def test_space_seeds_are_in_space_and_budget(path: Path) -> None:
    config = load_config(path)
    codec = Codec(config.space)
    assert config.seeds, f"{path.name} has no seed architecture"
    for seed in config.seeds:
        text = codec.decode(codec.encode(seed.text, seed.path))
        errors = [d for d in check_source(text, seed.path).diagnostics if d.severity.value == "error"]
        assert errors == [], f"{seed.path}: decoded seed does not check"
        statics = static_costs(text, config.objectives, config.budgets)
        assert statics.error is None and statics.over is None, f"{seed.path}: {statics.error or statics.over}"


def test_gpu_space_seeds_cache_ratios() -> None:
    config = load_config(ROOT / "examples" / "search" / "gpu.toml")
    codec = Codec(config.space)
    cache = [
        static_costs(codec.decode(codec.encode(s.text, s.path)), config.objectives, config.budgets).costs["cache@4096"]
        for s in config.seeds
    ]
    assert [Path(s.path).stem for s in config.seeds][0] == "gpu_transformer_pp"
    assert config.population == 16 and config.device == "cuda"
    # the hybrids keep half the attention layers: just over half the Transformer++ cache (conv / Mamba state)
    assert all(0.5 <= c / cache[0] < 0.52 for c in cache[1:]), cache
