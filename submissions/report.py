"""Report files of a verification: report.json (the contract) and summary.txt (for people)."""

from __future__ import annotations

import json
from pathlib import Path

from contract.schema import VerificationReport
from submissions.stats import p_text

REPORT_FILE = "report.json"
SUMMARY_FILE = "summary.txt"
FLAGGED_LINES = 100  # flagged files named in summary.txt (report.json has every one)


def write_report(report: VerificationReport, out_dir: Path) -> None:
    """report.json (the contract) and summary.txt (for people), written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in ((REPORT_FILE, report.model_dump_json(indent=2) + "\n"), (SUMMARY_FILE, summary_text(report))):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out_dir / name)


def summary_text(report: VerificationReport) -> str:
    """A human summary of a verification report."""
    lines = [
        f"verdict: {report.verdict.value.upper()}",
        f"track: {report.track} (rules {report.rules_version}, protocol {report.protocol})",
        f"config: {report.run_config.trainer.label()} recipe {report.run_config.recipe} "
        f"overrides {json.dumps(dict(report.run_config.overrides), sort_keys=True)}",
        f"hardware class: {report.run_config.hardware_class} x {report.run_config.gpus_per_node} GPU(s) "
        f"x {report.run_config.nodes} node(s)",
        f"verifier: {report.verifier.id} (speedrun {report.verifier.version})",
        "execution: "
        + {True: "sealed (bwrap)", False: "UNSEALED (no sandbox on this machine)", None: "not recorded"}[report.sealed],
    ]
    if report.core is not None:
        lines.append(
            f"CORE: mean {report.core.mean:.4f}, std {report.core.std:.4f}, n {report.core.n}; "
            f"threshold {report.core_threshold}, alpha {report.alpha}"
        )
    if report.p_value is not None:
        lines.append(f"p-value (one-sided t-test, mean CORE > threshold): {p_text(report.p_value)}")
    if report.training_hours is not None:
        h = report.training_hours
        lines.append(f"training time: mean {h.mean:.6f} h ({h.mean * 3600:.2f} s), std {h.std * 3600:.2f} s, n {h.n}")
    if report.val_bpb is not None:
        lines.append(f"val_bpb: mean {report.val_bpb.mean:.4f}, std {report.val_bpb.std:.4f}")
    if report.runs:
        lines.append("runs:")
        for i, r in enumerate(report.runs):
            core = "n/a" if r.core_score is None else f"{r.core_score:.4f}"
            bpb = "n/a" if r.val_bpb is None else f"{r.val_bpb:.4f}"
            lines.append(
                f"  {i}: seed {r.seed}, CORE {core}, val_bpb {bpb}, training {r.training_seconds:.2f} s "
                f"({r.rules_version}), {r.steps} steps on {r.hardware.device_name}"
            )
            if r.self_reported_training_seconds is not None:
                flag = " FLAGGED: beyond the tolerance" if r.clock_disagrees else ""
                lines.append(f"     self-reported (speedrun-v1): {r.self_reported_training_seconds:.2f} s{flag}")
    if report.deltas is not None:
        d = report.deltas
        flag = "FLAGGED" if d.flagged else "ok"
        lines.append(f"claims vs verified: {flag}")
        if d.training_hours_ratio is not None:
            lines.append(f"  training time verified/claimed: {d.training_hours_ratio:.3f}x")
        if d.core is not None:
            lines.append(f"  CORE verified - claimed: {d.core:+.4f}")
        if d.val_bpb is not None:
            lines.append(f"  val_bpb verified - claimed: {d.val_bpb:+.4f}")
        lines.extend(f"  note: {n}" for n in d.notes)
    if report.fork_diff is not None:
        fd = report.fork_diff
        lines.append(
            f"fork diff vs reference {fd.base_commit[:12]}: {fd.files_changed} files, +{fd.insertions} -{fd.deletions} "
            f"(artifact {fd.artifact}, sha256 {fd.sha256[:16]})"
        )
        if fd.truncated or fd.files_truncated:
            lines.append(
                "  CUT at a cap: "
                + ", ".join(n for n, cut in (("the diff", fd.truncated), ("the file list", fd.files_truncated)) if cut)
                + " (cannot be approved)"
            )
        flagged = [f for f in fd.files if f.flags]
        for f in flagged[:FLAGGED_LINES]:
            lines.append(
                f"  flagged {f.path}: {', '.join(f.flags)}"
                + (f" ({f.size_bytes} bytes, sha256 {f.sha256})" if f.sha256 else "")
            )
        if len(flagged) > FLAGGED_LINES:
            lines.append(f"  ... and {len(flagged) - FLAGGED_LINES} more flagged files (report.json lists them all)")
    if report.reasons:
        lines.append("reasons:")
        lines.extend(f"  - {r}" for r in report.reasons)
    if report.log_tail:
        lines.append("log tail:")
        lines.extend(f"  | {line}" for line in report.log_tail.splitlines())
    return "\n".join(lines) + "\n"
