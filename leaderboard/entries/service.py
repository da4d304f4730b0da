"""The entries domain's public API, one import for routes, jobs, the web pages and the CLI.

Each job lives in its own module: ``board`` (reading), ``submission`` (submitting), ``actions``
(owner and admin actions), ``checks`` (the site's checks of a report), ``verification`` (applying
a report) and ``standing`` (ranks).
"""

from __future__ import annotations

from leaderboard.entries.actions import can_request_reverification, request_reverification, retract
from leaderboard.entries.board import (
    entry_detail,
    entry_public,
    entry_url,
    get_entry_row,
    job_public,
    leaderboard,
    leaderboard_json,
    leaderboard_json_key,
    progression,
    run_public,
    verification_public,
)
from leaderboard.entries.checks import VerificationChecks, check_report
from leaderboard.entries.standing import recompute_ranks
from leaderboard.entries.submission import SubmitOutcome, body_digest, submit
from leaderboard.entries.verification import apply_verification, mark_unverifiable

__all__ = [
    "SubmitOutcome",
    "VerificationChecks",
    "apply_verification",
    "body_digest",
    "can_request_reverification",
    "check_report",
    "entry_detail",
    "entry_public",
    "entry_url",
    "get_entry_row",
    "job_public",
    "leaderboard",
    "leaderboard_json",
    "leaderboard_json_key",
    "mark_unverifiable",
    "progression",
    "recompute_ranks",
    "request_reverification",
    "retract",
    "run_public",
    "submit",
    "verification_public",
]
