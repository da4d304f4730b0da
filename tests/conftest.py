"""Shared test fixtures: real services, no mocks.

- ``free_port``: a free TCP port on 127.0.0.1.
- ``postgres_url``: a fresh PostgreSQL database for this test session (dropped at the end); tests
  that use it are skipped, with the reason, when the server on 127.0.0.1:5432 is unreachable.
  CI sets ``SPEEDRUN_REQUIRE_POSTGRES=1`` so that an unreachable server fails instead of skipping.
- ``browser``: headless Debian Chromium driven by Playwright (``/usr/bin/chromium``); skipped when
  it is not installed, failed under ``SPEEDRUN_REQUIRE_BROWSER=1`` (CI).
- Tests marked ``gpu`` skip themselves on machines without CUDA.

Database engines, the app over ASGI and a live uvicorn server live in ``tests/leaderboard``.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get("SPEEDRUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
CHROMIUM = os.environ.get("SPEEDRUN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU; this machine has none")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


_COUNTED_MARKERS = ("postgres", "browser", "gpu", "slow")
_marker_outcomes: dict[str, dict[str, int]] = {m: {} for m in _COUNTED_MARKERS}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count outcomes per marker, so a run shows that its PostgreSQL and browser tests really ran."""
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        for marker in _COUNTED_MARKERS:
            if marker in report.keywords:
                counts = _marker_outcomes[marker]
                counts[report.outcome] = counts.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    parts = []
    for marker, counts in _marker_outcomes.items():
        if counts:
            parts.append(f"{marker}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())))
    if parts:
        terminalreporter.write_line("tests by marker -- " + "; ".join(parts))


def _required(name: str) -> bool:
    return os.environ.get(name, "") not in {"", "0", "false"}


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_reachable() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any connection failure means: no server for these tests
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {exc}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, as a SQLAlchemy URL."""
    reason = _postgres_reachable()
    if reason is not None:
        if _required("SPEEDRUN_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    import psycopg

    name = f"speedrun_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Chromium (Playwright ``Browser``) shared by the session's browser tests."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if _required("SPEEDRUN_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if _required("SPEEDRUN_REQUIRE_BROWSER"):
            pytest.fail("playwright is not installed (pip install -e '.[dev]')")
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests leave files worth looking at afterwards (screenshots): test-artifacts/."""
    d = Path(__file__).resolve().parent.parent / "test-artifacts"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture
def reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A reference trainer repository (the worker's $SPEEDRUN_REFERENCE_REPO) with a scorer, for the
    review-diff tests of the verifier and of the site."""
    from submissions import forks
    from tests.submissions.review_repos import make_reference

    ref = make_reference(tmp_path / "reference")
    monkeypatch.setenv(forks.REFERENCE_REPO_ENV, str(ref))
    return ref
