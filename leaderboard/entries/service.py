"""The entries domain's public API, one import for routes, jobs, the web pages and the CLI.

Each job lives in its own module: ``board`` (reading), ``submission`` (submitting), ``actions``
(owner and admin actions), ``checks`` (the site's checks of a report), ``pool`` (the
re-verification policy), ``verification`` (applying a report) and ``standing`` (ranks).
"""

from __future__ import annotations

from leaderboard.entries.actions import approve, can_request_reverification, request_reverification, retract
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
from leaderboard.entries.checks import SiteChecks, check_report
from leaderboard.entries.standing import recompute_ranks
from leaderboard.entries.submission import SubmitOutcome, body_digest, submit
from leaderboard.entries.verification import apply_verification, mark_unverifiable, reevaluate_track

__all__ = [
    "SiteChecks",
    "SubmitOutcome",
    "apply_verification",
    "approve",
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
    "reevaluate_track",
    "request_reverification",
    "retract",
    "run_public",
    "submit",
    "verification_public",
]
