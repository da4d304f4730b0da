"""The site's own checks of a verification report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leaderboard.entries.models import Entry
from leaderboard.entries.ranking import mean_std, one_sided_p_value
from leaderboard.tracks.models import Track
from leaderboard.tracks.service import track_rules
from submissions.schema import VerificationReport


@dataclass(frozen=True)
class VerificationChecks:
    verdict: str
    reasons: list[str]


def _run_config_without_seed(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k != "seed"}


def check_report(track: Track, entry: Entry, report: VerificationReport) -> VerificationChecks:
    """The site's own reading of a report: it never upgrades a verdict, and downgrades a
    'verified' that breaks a rule (too few runs, repeated seeds, wrong hardware, p >= alpha)."""
    rules = track_rules(track)
    reasons = list(report.reasons)
    problems: list[str] = []
    inconclusive: list[str] = []
    if report.track != track.slug:
        problems.append(f"report is for track {report.track}, the entry is on {track.slug}")
    if _run_config_without_seed(report.run_config.model_dump(mode="json")) != _run_config_without_seed(
        entry.run_config
    ):
        problems.append("report.run_config differs from the entry's run config")
    runs = report.runs
    seeds = [r.seed for r in runs]
    if len(set(seeds)) != len(seeds):
        inconclusive.append(f"seeds repeat across runs: {seeds}")
    if len(runs) < rules.min_runs:
        inconclusive.append(f"{len(runs)} verified runs, the track needs {rules.min_runs}")
    for i, r in enumerate(runs):
        if r.rules_version != rules.rules_version:
            problems.append(f"runs[{i}] timed under {r.rules_version}, the track uses {rules.rules_version}")
        why = rules.allows_hardware(r.hardware.sku, r.hardware.device_count, r.hardware.nodes)
        if why is not None:
            problems.append(f"runs[{i}]: {why}")
    cores = [r.core_score for r in runs]
    if runs and any(c is None for c in cores):
        inconclusive.append("some verified runs have no CORE score")
    values = [c for c in cores if c is not None]
    if values and len(values) >= 2 and not inconclusive:
        p = one_sided_p_value(values, rules.threshold)
        mean, _ = mean_std(values)
        if p is None or p >= rules.alpha or mean <= rules.threshold:
            problems.append(f"mean CORE {mean:.4f} vs threshold {rules.threshold}: p = {p} is not below {rules.alpha}")
    verdict = report.verdict.value
    if verdict != "verified":  # the site never upgrades; the verifier's own reasons stand
        return VerificationChecks(verdict=verdict, reasons=reasons)
    if problems:
        verdict = "failed"
    elif inconclusive:
        verdict = "inconclusive"
    site_reasons = [f"site check: {m}" for m in [*problems, *inconclusive]]
    return VerificationChecks(verdict=verdict, reasons=reasons + site_reasons)
