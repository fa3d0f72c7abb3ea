"""The README's quickstart runs, against the real server and the orders API of
test_integration.py (its URLs swapped for theirs), so what it shows is what
the SDK does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import Server
from .conftest import API

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart() -> str:
    text = README.read_text()
    section = text[text.index("## Quickstart") :]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m is not None
    return m.group(1)


def test_the_quickstart_is_at_most_fifteen_lines_of_code() -> None:
    code = [line for line in quickstart().splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(code) <= 15, "\n".join(code)


def test_the_quickstart_runs(server: Server, api: API, capsys: pytest.CaptureFixture[str]) -> None:
    code = quickstart().replace('"https://mandate.example"', repr(server.issuer))
    code = code.replace('"https://orders.example/orders"', repr(api.url + "/orders"))
    env: dict[str, object] = {"secret": server.secrets["orchestrator"], "res_secret": server.secrets["researcher"]}
    exec(compile(code, str(README), "exec"), env)  # noqa: S102 - our own README
    assert env["orders"] == {"holder": "orchestrator/summarizer-7f3a", "subject": "orchestrator",
                             "actors": ["orchestrator/summarizer-7f3a"], "depth": 1}
    out = capsys.readouterr().out
    assert "summarizer-7f3a" in out
