"""Every shared vector file, case by case, and the conformance runner's CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mandate_auth.conformance import run

from .conftest import VECTORS

FILES = sorted(VECTORS.glob("*.json"))


def expectations(path: Path) -> list[tuple[str, object]]:
    f = json.loads(path.read_text())
    if "covers" in f:
        return [(f"{q[0]} ⊇ {q[1]}", q[2]) for q in f["covers"]]
    return [(c["name"], c["expect"]) for c in f["cases"]]


def test_vectors_exist() -> None:
    kinds = {p.name.split("-")[0].removesuffix(".json") for p in FILES}
    assert {"verify", "scope", "call", "feed", "mcp"} <= kinds, f"vector files missing under {VECTORS}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_vector_file(path: Path) -> None:
    got = run(str(path))
    want = expectations(path)
    assert len(got) == len(want)
    wrong = [(w[0], g["verdict"], w[1]) for g, w in zip(got, want) if g["name"] != w[0] or g["verdict"] != w[1]]
    assert not wrong, "\n".join(f"{n}: got {g!r}, want {e!r}" for n, g, e in wrong)


@pytest.mark.parametrize("path", [p for p in FILES if p.name.startswith(("call-", "mcp-"))], ids=lambda p: p.name)
def test_call_and_mcp_vectors_name_the_policies(path: Path) -> None:
    f = json.loads(path.read_text())
    got = run(str(path))
    for g, c in zip(got, f["cases"]):
        assert g["policies"] == c["policies"], c["name"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_runner_cli_prints_one_json_line_per_case(path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "mandate_auth.conformance", str(path)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    lines = [json.loads(line) for line in r.stdout.decode("utf-8").splitlines()]
    want = expectations(path)
    assert [set(x) for x in lines] == [{"name", "verdict"}] * len(want)
    assert [(x["name"], x["verdict"]) for x in lines] == want


def test_runner_cli_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"neither": 1}')
    for args in ([str(bad)], [str(tmp_path / "missing.json")], []):
        r = subprocess.run([sys.executable, "-m", "mandate_auth.conformance", *args], capture_output=True, timeout=60)
        assert r.returncode == 2
