"""The `speedrun` command: groups, help, version, errors, and a light import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from speedrun.cli import build_parser, main

GROUPS = ["serve", "demo", "admin", "plan", "train", "data", "eval", "submit", "verify", "worker"]


def test_help_lists_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for group in GROUPS:
        assert f"    {group} " in out


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_explains_itself(group: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([group, "--help"])
    assert exc.value.code == 0
    assert "usage: speedrun " + group in capsys.readouterr().out


def test_wrong_flag_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--no-such-flag"])
    assert exc.value.code == 2
    assert "--no-such-flag" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("speedrun ")


def test_building_the_parser_imports_no_heavy_library() -> None:
    code = (
        "import sys; from speedrun.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('torch', 'fastapi', 'sqlalchemy', 'pyarrow', 'tiktoken') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == ""


def test_parser_is_rebuilt_identically() -> None:
    assert build_parser().format_help() == build_parser().format_help()
