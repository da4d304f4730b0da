"""The diff view of a fork's review (web/pages/review_view.py): pages that cover every byte once,
cut at file starts, and lines whose hidden characters are shown and marked."""

from __future__ import annotations

import itertools

import pytest

from web.pages.review_view import diff_lines, page_bounds, review_rule


def _diff(files: int, lines: int) -> bytes:
    out = b""
    for i in range(files):
        out += f"diff --git a/f{i}.py b/f{i}.py\n--- a/f{i}.py\n+++ b/f{i}.py\n@@ -1 +1,{lines} @@\n".encode()
        out += b"".join(f"+line {n}\n".encode() for n in range(lines))
    return out


@pytest.mark.parametrize(("files", "lines", "page"), [(1, 5, 1024), (40, 50, 4096), (3, 5000, 4096), (0, 0, 1024)])
def test_pages_cover_every_byte_once_in_order(files: int, lines: int, page: int) -> None:
    text = _diff(files, lines)
    bounds = page_bounds(text, page)
    assert b"".join(text[a:b] for a, b in bounds) == text
    assert all(b > a for a, b in bounds) and all(b1 == a2 for (_, b1), (a2, _) in itertools.pairwise(bounds))


def test_a_page_starts_at_a_file_when_one_fits() -> None:
    text = _diff(40, 50)
    for a, _ in page_bounds(text, 4096)[1:]:
        assert text[a:].startswith(b"diff --git ")


def test_one_line_longer_than_a_page_is_kept_whole() -> None:
    text = b"+" + b"x" * 10_000 + b"\n+y\n"
    bounds = page_bounds(text, 1024)
    assert text[bounds[0][0] : bounds[0][1]] == b"+" + b"x" * 10_000 + b"\n"


def test_lines_are_classed_and_hidden_characters_shown() -> None:
    chunk = "diff --git a/s.py b/s.py\n@@ -1 +1 @@\n-ok = 1\n+ok = 0 \u202e# ylno tnemmoc\n same\n+bytes \xff\n".encode(
        "utf-8"
    ).replace(b"\xc3\xbf", b"\xff")
    lines = diff_lines(chunk)
    assert [line.css.split()[0] for line in lines] == [
        "diff-file",
        "diff-hunk",
        "diff-del",
        "diff-add",
        "diff-ctx",
        "diff-add",
    ]
    assert lines[3].css == "diff-add diff-odd" and "\\u202e" in lines[3].text and "\u202e" not in lines[3].text
    assert lines[5].css == "diff-add diff-odd" and "\\xff" in lines[5].text
    assert "diff-odd" not in lines[2].css


@pytest.mark.parametrize(
    ("fork", "rule", "status", "review", "says"),
    [
        (False, "required", "verified", None, "the reference trainer needs none"),
        (True, "none", "failed", None, "not required on this track"),
        (True, "required", "failed", None, "did not pass, so there is nothing to approve"),
        (True, "required", "error", None, "did not pass, so there is nothing to approve"),
        (True, "required", "rejected", None, "did not pass, so there is nothing to approve"),
        (True, "required", "awaiting_review", "pending", "awaiting code review"),
        (True, "required", "verified", "approved", "was approved"),
        (True, "required", "pending", None, "starts once this fork's verification passes"),
    ],
)
def test_the_rule_is_stated_for_each_state(fork: bool, rule: str, status: str, review: str | None, says: str) -> None:
    text = review_rule(fork, rule, status, review)
    assert says in text
    assert ("not required" in text) == (fork and rule != "required")


def test_python_lines_are_tokenized_and_join_back_to_the_line() -> None:
    chunk = (
        b"diff --git a/s.py b/s.py\n@@ -1 +1 @@\n+def score(x):  # fast\n+    return len('a#b') + 0.5\n"
        b"diff --git a/n.txt b/n.txt\n+def not_python\n"
    )
    lines = diff_lines(chunk)
    for line in lines:
        assert not line.parts or "".join(t for _, t in line.parts) == line.text
    assert ("py-kw", "def") in lines[2].parts and ("py-com", "# fast") in lines[2].parts
    assert ("py-str", "'a#b'") in lines[3].parts and ("py-builtin", "len") in lines[3].parts
    assert ("py-num", "0.5") in lines[3].parts and ("py-kw", "return") in lines[3].parts
    assert lines[5].parts == ()  # not a .py file
