"""The page pieces computed in Python: log tails as a terminal shows them, the number formats the
board promises (h:mm:ss, cents, CORE against its threshold), Markdown without HTML, and the
re-verify rules spelled out."""

from __future__ import annotations

from types import SimpleNamespace

from leaderboard.formatting import hms, usd
from leaderboard.users.models import Role
from web.pages.entry_parts import LOG_TAIL_LINES, clean_log_line, log_tail, reverify_refusal
from web.render import core_margin, core_value, markdown, minutes, signed_hms


def test_log_tail_is_the_true_end_without_terminal_codes() -> None:
    lines = [f"step {i:05d} | loss {9 - i / 1e4:.4f}" for i in range(20_000)]
    data = ("\n".join(lines) + "\n").encode()  # ~600 kB: only the end is read
    tail = log_tail(data).split("\n")
    assert len(tail) == LOG_TAIL_LINES
    assert tail[-1] == lines[-1] and tail[0] == lines[-LOG_TAIL_LINES]


def test_log_lines_drop_escape_codes_and_keep_what_a_redraw_left() -> None:
    assert clean_log_line("\x1b[32mok\x1b[0m done") == "ok done"
    assert clean_log_line("10%\r50%\r100% |####|") == "100% |####|"  # a progress bar redrawn with \r
    assert clean_log_line("\x1b]0;window title\x07shown") == "shown"
    assert clean_log_line("crlf line\r") == "crlf line"
    assert clean_log_line("bell\x07 and nul\x00 gone\ttab kept") == "bell and nul gone\ttab kept"
    assert log_tail(b"a\r\nb\x1b[1m!\x1b[0m\r\n") == "a\nb!"


def test_times_are_h_mm_ss_and_money_is_cents() -> None:
    assert hms(1.65) == "1:39:00" and hms(168) == "168:00:00" and hms(0.04) == "0:02:24" and hms(None) == "—"
    assert hms(0.05) != hms(0.04)  # two decimals of an hour read alike; h:mm:ss does not
    assert signed_hms(-0.1) == "-0:06:00" and signed_hms(0.0) == "±0:00:00"
    assert minutes(400) == "6.7 min" and minutes(40_000) == "11:06:40"
    assert usd(39.599999999999994) == "$39.60" and usd(0.04) == "$0.04" and usd(0.001) == "<$0.01"
    assert usd(43_008) == "$43,008"


def test_core_next_to_the_threshold_never_reads_as_failing() -> None:
    assert core_value(0.256525) == "0.256525" and core_margin(0.256525) == "±0"
    assert core_value(0.2565) == "0.25650"  # below GPT-2: shown with the digit that says so
    assert core_value(0.2571) == "0.2571" and core_margin(0.2571) == "+0.0006"
    assert core_margin(0.25651) == "-0.000015"


def test_markdown_descriptions_render_without_html() -> None:
    html = str(markdown("**fast** <script>alert(1)</script> [x](javascript:alert(1)) see https://e.org/a."))
    assert "<strong>fast</strong>" in html and "<script>" not in html and 'href="javascript' not in html
    assert '<a href="https://e.org/a" rel="nofollow noopener noreferrer">' in html


def test_reverify_refusals_say_why() -> None:
    owner = SimpleNamespace(name="alice", role=Role.submitter)
    other = SimpleNamespace(name="bob", role=Role.submitter)
    admin = SimpleNamespace(name="root", role=Role.admin)
    failed = SimpleNamespace(status="failed")
    queued = [SimpleNamespace(id=7, status="queued")]
    assert reverify_refusal(owner, failed, "alice", []) is None  # type: ignore[arg-type]
    assert reverify_refusal(admin, failed, "alice", []) is None  # type: ignore[arg-type]
    assert "owner or an admin" in str(reverify_refusal(other, failed, "alice", []))  # type: ignore[arg-type]
    assert "Sign in" in str(reverify_refusal(None, failed, "alice", []))
    assert "Job #7 is already queued" in str(reverify_refusal(owner, failed, "alice", queued))  # type: ignore[arg-type]
    assert "reported" in str(reverify_refusal(admin, SimpleNamespace(status="reported"), None, []))  # type: ignore[arg-type]
    limit = reverify_refusal(owner, failed, "alice", [], counted=3, allowed=3)  # type: ignore[arg-type]
    assert "limit for owners" in str(limit)
    assert reverify_refusal(admin, failed, "alice", [], counted=3, allowed=3) is None  # type: ignore[arg-type]
