"""Shared pytest configuration: the `--update-golden` flag for golden-file tests, hypothesis profiles, the
`single_thread` fixture.

Hypothesis runs derandomized by default (profile `ci`: the same inputs on every run, so a landing is never
decided by luck); `HYPOTHESIS_PROFILE=explore pytest ...` draws fresh random inputs each run, which is how
new bugs are looked for (e.g. `HYPOTHESIS_PROFILE=explore LIVC_DIFFERENTIAL_SCALE=10 pytest
tests/test_differential.py`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files instead of comparing")


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One torch intra-op thread for a module (`pytestmark = pytest.mark.usefixtures("single_thread")`): those
    tensors are tiny, and on a busy machine OpenMP workers spinning for a core made the same decode 40x slower
    (1.6 s instead of 0.04 s)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def assert_golden(path: Path, actual: str, update: bool) -> None:
    """Compare `actual` with the golden file at `path` (or rewrite it under --update-golden)."""
    if update or not path.exists():
        if not update:
            pytest.fail(f"missing golden file {path}; run pytest --update-golden and review the diff")
        path.write_text(actual, encoding="utf-8")
        return
    assert actual == path.read_text(encoding="utf-8"), f"{path} differs; review and run pytest --update-golden"
