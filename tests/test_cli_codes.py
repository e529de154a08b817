"""`livc explain` knows every code livc can print: the compiler's, the TVM backend's and the search's."""

from __future__ import annotations

import pytest

from livc.backends.tvm.errors import CODES as TVM_CODES
from livc.cli import main
from livc.search.errors import CODES as SEARCH_CODES


@pytest.mark.parametrize("code", sorted({**TVM_CODES, **SEARCH_CODES}))
def test_backend_and_search_codes_are_explained(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", code.lower()]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{code}: ") and len(out) > 20


def test_code_ranges_do_not_collide() -> None:
    from livc.dsl.codes import CODES

    assert not set(CODES) & set(TVM_CODES) and not set(CODES) & set(SEARCH_CODES)
    assert all(c.startswith("E07") for c in TVM_CODES) and all(c.startswith("E08") for c in SEARCH_CODES)
