"""`speedrun admin` and `speedrun serve --help`: real commands on a real SQLite database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from leaderboard.app import open_database
from leaderboard.audit.models import AuditEvent
from leaderboard.db import session_scope
from leaderboard.settings import Settings
from leaderboard.users.service import authenticate
from speedrun.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_user_create_prints_a_working_token_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "admin", "user", "create", "ada", "--role", "worker", "--home", str(tmp_path))
    assert code == 0 and "created user ada" in err
    token = out.strip()
    assert token.startswith("sr_") and token not in err
    db = open_database(Settings(home=tmp_path, secret_key="x"))
    with session_scope(db.sessionmaker) as s:
        assert authenticate(s, token).name == "ada"
    db.close()
    code, _, err = _run(capsys, "admin", "user", "create", "ada", "--home", str(tmp_path))
    assert code == 2 and "exists already" in err


def test_price_add_and_track_set_are_audited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path)
    code, out, _ = _run(
        capsys, "admin", "price", "add", "h100-sxm", "2.75", "--effective-date", "2026-12-01", "--home", home
    )
    assert code == 0 and json.loads(out)["usd_per_gpu_hour"] == 2.75
    code, out, _ = _run(capsys, "admin", "track", "set", "cpu-smoke", "--min-runs", "3", "--home", home)
    assert code == 0 and json.loads(out)["min_runs"] == 3
    db = open_database(Settings(home=tmp_path, secret_key="x"))
    with session_scope(db.sessionmaker) as s:
        assert set(s.scalars(select(AuditEvent.action))) == {"price.add", "track.update"}
    db.close()


def test_bad_values_name_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "admin", "track", "set", "cpu-smoke", "--alpha", "3", "--home", str(tmp_path))
    assert code == 2 and "alpha" in err
    code, _, err = _run(
        capsys, "admin", "price", "add", "h100-sxm", "3", "--effective-date", "soon", "--home", str(tmp_path)
    )
    assert code == 2 and "--effective-date" in err


def test_serve_help_names_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "--database-url" in out and "--port" in out and "--host" in out


def test_serve_takes_its_public_url_from_the_environment(tmp_path: Path, free_port: int) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "SPEEDRUN_BASE_URL": "https://speedrun.example.org", "SPEEDRUN_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "speedrun", "serve", "--host", "127.0.0.1", "--port", str(free_port)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
    finally:
        proc.kill()
        proc.wait()
    assert first.startswith("speedrun site on https://speedrun.example.org ")
