"""Per-candidate cost of a search space: train a few of its candidates in this process and print wall and CPU s.

    python benchmarks/star_candidates.py SPACE.toml [-n N] [--seed S] [--classes NAME,...]

Evaluates the space's seed architectures, then random in-budget genomes (numpy seed S), up to N candidates,
with the space's protocol, one torch thread, on the space's device; prints one JSON line per candidate:
wall seconds, CPU seconds of this process (on a loaded machine the CPU seconds are what an idle core would
take, up to cache effects), quality, failure. `--classes` keeps only random genomes that use one of the named
classes (e.g. Rec-1 to time Mamba candidates). Used to size examples/search/cpu.toml (docs/search.md).
Non-goals: parallel workers (benchmarks/star_small.py runs whole searches).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from livc.search.codec import Codec
from livc.search.config import load_config
from livc.search.evaluate import evaluate
from livc.search.statics import static_costs


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("space")
    p.add_argument("-n", type=int, default=3, help="candidates to train (seeds first)")
    p.add_argument("--seed", type=int, default=7, help="numpy seed of the random genomes")
    p.add_argument("--classes", default="", help="random genomes must use one of these classes (comma-separated)")
    return p.parse_args()


def candidates(space_file: str, n: int, seed: int, classes: tuple[str, ...]) -> list[tuple[str, str]]:
    config = load_config(space_file)
    codec = Codec(config.space)
    names = [c.name for c in config.space.classes]
    out = [(f"seed {s.path}", codec.decode(codec.encode(s.text, s.path))) for s in config.seeds][:n]
    rng = np.random.default_rng(seed)
    for _ in range(1000 * n):
        if len(out) >= n:
            break
        genome = codec.random(rng)
        used = {names[slot.cls] for slot in genome.slots}
        text = codec.decode(genome)
        statics = static_costs(text, config.objectives, config.budgets)
        if statics.error is None and statics.over is None and (not classes or used & set(classes)):
            out.append((codec.key(genome), text))
    return out


def main() -> None:
    args = _args()
    torch.set_num_threads(1)
    config = load_config(args.space)
    classes = tuple(c for c in args.classes.split(",") if c)
    for name, text in candidates(args.space, args.n, args.seed, classes):
        wall, cpu = time.perf_counter(), time.process_time()
        ev = evaluate(text, config.protocol, 1, device=config.device, time_limit_s=config.time_limit_s)
        row = {
            "candidate": name,
            "wall_s": round(time.perf_counter() - wall, 1),
            "cpu_s": round(time.process_time() - cpu, 1),
            "quality": None if ev.quality is None else round(ev.quality, 4),
            "failure": ev.failure,
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
