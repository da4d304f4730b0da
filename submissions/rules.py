"""The verdict rule of a track, applied to the verifier's own runs.

A record needs k >= ``track.min_runs`` verified runs with distinct seeds, on the track's hardware,
under the track's rules and eval protocol, and a one-sided one-sample t-test of mean CORE >
``track.threshold`` with p < ``track.alpha`` (RULES.md, rule 2). ``decide`` applies that rule to
the verifier's own runs; claims are compared beside it (``claim_deltas``) and never change it.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from contract.schema import ClaimDeltas, RunConfig, RunResult, StatSummary, Verdict
from contract.tracks import TrackRules
from submissions.stats import mean, one_sided_t_test, p_text, sample_std, summarize
from trainer.config import build_config, overrides_of

# A claim is "far off" (flagged) when it is better than the verified mean by more than this.
HOURS_TOLERANCE_RATIO = 1.10  # claimed hours x 1.10 < verified hours
CORE_TOLERANCE_ABS = 0.01  # claimed mean CORE - verified mean CORE, plus 2 verified stds
VAL_BPB_TOLERANCE_ABS = 0.01  # verified mean val_bpb - claimed mean val_bpb, plus 2 verified stds


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: list[str]
    core: StatSummary | None = None
    p_value: float | None = None
    training_hours: StatSummary | None = None
    val_bpb: StatSummary | None = None
    deltas: ClaimDeltas | None = None


def hardware_problems(run: RunResult, run_config: RunConfig, track: TrackRules) -> list[str]:
    """Why this run's fingerprint does not match the track and the config (empty when it does)."""
    hw = run.hardware
    problems: list[str] = []
    gpus = 0 if hw.device_type == "cpu" else hw.device_count
    reason = track.allows_hardware(hw.sku, gpus, hw.nodes)
    if reason is not None:
        problems.append(reason)
    if hw.sku != run_config.hardware_class:
        problems.append(f"ran on {hw.sku} ({hw.device_name}), the config asks for {run_config.hardware_class}")
    if gpus != run_config.gpus_per_node:
        problems.append(f"ran on {gpus} GPU(s) per node, the config asks for {run_config.gpus_per_node}")
    if hw.nodes != run_config.nodes:
        problems.append(f"ran on {hw.nodes} node(s), the config asks for {run_config.nodes}")
    return problems


def _effective_overrides(recipe: str, overrides: Mapping[str, object]) -> dict[str, object] | None:
    """The overrides under which the reference trainer's config differs from its recipe (None when
    the reference trainer cannot tell: unknown recipe or keys, as for a fork)."""
    try:
        return dict(overrides_of(build_config(recipe, dict(overrides))))
    except (ValueError, TypeError, KeyError):
        return None


def same_overrides(recipe: str, a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    """Whether two override sets give the same run: equal, or equal once values that repeat the
    recipe's defaults are dropped (the trainer records only the overrides that change something)."""
    if dict(a) == dict(b):
        return True
    ea, eb = _effective_overrides(recipe, a), _effective_overrides(recipe, b)
    return ea is not None and ea == eb


def run_problems(run: RunResult, run_config: RunConfig, track: TrackRules) -> list[str]:
    """Rule violations of one run (each makes the verdict ``failed``)."""
    problems = list(hardware_problems(run, run_config, track))
    if run.rules_version != track.rules_version:
        problems.append(f"rules version {run.rules_version}, the track needs {track.rules_version}")
    if run.recipe != run_config.recipe:
        problems.append(f"recipe {run.recipe!r}, the config asks for {run_config.recipe!r}")
    if not same_overrides(run_config.recipe, run.overrides, run_config.overrides):
        problems.append(f"overrides {run.overrides} differ from the config's {run_config.overrides}")
    if run.core is None:
        problems.append("no CORE result")
    else:
        if run.core.protocol != track.protocol:
            problems.append(f"eval protocol {run.core.protocol}, the track needs {track.protocol}")
        if track.bundle_sha256 is not None and run.core.bundle_sha256 != track.bundle_sha256:
            problems.append(f"eval bundle {run.core.bundle_sha256[:12]}, the track pins {track.bundle_sha256[:12]}")
        if run.core.max_per_task != track.max_per_task:
            want = "all examples" if track.max_per_task is None else f"{track.max_per_task} per task"
            got = "all examples" if run.core.max_per_task is None else f"{run.core.max_per_task} per task"
            problems.append(f"CORE on {got}, the track needs {want}")
    return problems


def _opt_summary(values: Sequence[float | None]) -> StatSummary | None:
    present = [v for v in values if v is not None]
    return summarize(present) if present and len(present) == len(values) else None


def claim_deltas(claimed: Sequence[RunResult], verified: Sequence[RunResult]) -> ClaimDeltas | None:
    """Verified mean minus claimed mean per figure; flagged when a claim is better than the
    verified runs by more than the tolerances above, or when the runs consumed other data."""
    if not claimed or not verified:
        return None
    notes: list[str] = []
    flagged = False
    c_hours = mean([r.training_hours for r in claimed])
    v_hours = mean([r.training_hours for r in verified])
    ratio = v_hours / c_hours if c_hours > 0 else None
    if c_hours > 0 and v_hours > c_hours * HOURS_TOLERANCE_RATIO:
        flagged = True
        notes.append(
            f"verified training time {v_hours * 3600:.1f} s is {ratio:.2f}x the claimed {c_hours * 3600:.1f} s "
            f"(tolerance {HOURS_TOLERANCE_RATIO:.2f}x)"
        )
    core_delta: float | None = None
    c_core = [r.core_score for r in claimed if r.core_score is not None]
    v_core = [r.core_score for r in verified if r.core_score is not None]
    if c_core and v_core:
        core_delta = mean(v_core) - mean(c_core)
        tol = CORE_TOLERANCE_ABS + 2 * sample_std(v_core)
        if -core_delta > tol:
            flagged = True
            notes.append(f"claimed CORE {mean(c_core):.4f} exceeds verified {mean(v_core):.4f} by more than {tol:.4f}")
    bpb_delta: float | None = None
    c_bpb = [r.val_bpb for r in claimed if r.val_bpb is not None]
    v_bpb = [r.val_bpb for r in verified if r.val_bpb is not None]
    if c_bpb and v_bpb:
        bpb_delta = mean(v_bpb) - mean(c_bpb)
        tol = VAL_BPB_TOLERANCE_ABS + 2 * sample_std(v_bpb)
        if bpb_delta > tol:
            flagged = True
            notes.append(
                f"claimed val_bpb {mean(c_bpb):.4f} is below verified {mean(v_bpb):.4f} by more than {tol:.4f}"
            )
    notes.extend(digest_mismatches(claimed[0], verified[0]))
    if any(n.startswith("digest") for n in notes):
        flagged = True
    return ClaimDeltas(
        training_hours=v_hours - c_hours,
        training_hours_ratio=ratio,
        core=core_delta,
        val_bpb=bpb_delta,
        flagged=flagged,
        notes=notes,
    )


def digest_mismatches(claimed: RunResult, verified: RunResult) -> list[str]:
    """Inputs (data, tokenizer, eval bundle) the claim recorded differently from the verified run."""
    c, v = claimed.digests, verified.digests
    out: list[str] = []
    pairs = {
        "data manifest": (c.data_manifest_sha256, v.data_manifest_sha256),
        "tokenizer": (c.tokenizer_sha256, v.tokenizer_sha256),
        "eval bundle": (c.eval_bundle_sha256, v.eval_bundle_sha256),
    }
    for what, (a, b) in pairs.items():
        if a is not None and b is not None and a != b:
            out.append(f"digest of the {what} differs: claimed {a[:12]}, verified {b[:12]}")
    for shard, digest in sorted(c.shards.items()):
        other = v.shards.get(shard)
        if other is not None and other != digest:
            out.append(f"digest of shard {shard} differs: claimed {digest[:12]}, verified {other[:12]}")
    return out


@dataclass(frozen=True)
class ClaimTest:
    """The track's test applied to a submission's own claimed runs (those with a CORE result)."""

    n: int
    core_mean: float | None
    p_value: float | None  # None with fewer than 2 runs: a t-test needs two
    problem: str | None  # why runs like these cannot pass; None when the claim passes

    @property
    def passes(self) -> bool:
        return self.problem is None


def claim_test(claimed: Sequence[RunResult], *, threshold: float, alpha: float) -> ClaimTest:
    """A claim fails the track's test when its own mean CORE is not above the threshold, or when
    two or more of its own runs fail the one-sided t-test at alpha: a verification of runs like
    them cannot pass, so the site refuses it before any GPU time (docs/RULES.md, "Pre-flight")."""
    cores = [r.core_score for r in claimed if r.core_score is not None]
    if not cores:
        return ClaimTest(0, None, None, None)
    m = mean(cores)
    runs = f"{len(cores)} claimed run{'s' if len(cores) != 1 else ''}"
    if m <= threshold:
        why = (
            f"the claim's own mean CORE {m:.4f} over {runs} is not above the track's bar {threshold}: "
            "a verification of runs like these cannot pass"
        )
        p = one_sided_t_test(cores, threshold).p_value if len(cores) >= 2 else None
        return ClaimTest(len(cores), m, p, why)
    if len(cores) < 2:
        return ClaimTest(1, m, None, None)
    p = one_sided_t_test(cores, threshold).p_value
    if p >= alpha:
        why = (
            f"the claim's own {runs} fail the track's test: mean CORE {m:.4f} vs the bar {threshold}, "
            f"one-sided p = {p_text(p)}, needs < alpha {alpha}"
        )
        return ClaimTest(len(cores), m, p, why)
    return ClaimTest(len(cores), m, p, None)


def decide(
    runs: Sequence[RunResult],
    *,
    track: TrackRules,
    run_config: RunConfig,
    claimed: Sequence[RunResult] = (),
) -> Decision:
    """The track's verdict on the verifier's finished runs (pure; no I/O).

    Order: rule violations (hardware, rules/protocol version, config, missing CORE) -> failed;
    too few runs or repeated seeds -> inconclusive; otherwise verified iff p < alpha.
    """
    if not runs:
        return Decision(Verdict.error, ["no finished runs"])
    reasons: list[str] = []
    for i, run in enumerate(runs):
        reasons.extend(f"run {i} (seed {run.seed}): {p}" for p in run_problems(run, run_config, track))
    hours = summarize([r.training_hours for r in runs])
    bpb = _opt_summary([r.val_bpb for r in runs])
    deltas = claim_deltas(claimed, runs)
    core_values = [r.core_score for r in runs]
    core = summarize([c for c in core_values if c is not None]) if all(c is not None for c in core_values) else None

    def decision(verdict: Verdict, why: list[str], p_value: float | None = None) -> Decision:
        return Decision(verdict, why, core=core, p_value=p_value, training_hours=hours, val_bpb=bpb, deltas=deltas)

    if reasons:
        return decision(Verdict.failed, reasons)

    inconclusive: list[str] = []
    seeds = [r.seed for r in runs]
    if len(set(seeds)) != len(seeds):
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        inconclusive.append(f"seeds must be distinct; repeated: {repeated}")
    distinct = len(set(seeds))
    if distinct < track.min_runs:
        inconclusive.append(f"{distinct} run(s) with distinct seeds; the track needs at least {track.min_runs}")
    if distinct < 2:
        inconclusive.append("a t-test needs at least 2 runs with distinct seeds")
    if inconclusive or core is None:
        return decision(Verdict.inconclusive, inconclusive)

    test = one_sided_t_test([c for c in core_values if c is not None], track.threshold)
    summary = (
        f"mean CORE {core.mean:.4f} (std {core.std:.4f}, n={core.n}) vs threshold {track.threshold}: "
        f"one-sided t = {test.t:.3f}, p = {p_text(test.p_value)}"
    )
    if test.p_value < track.alpha:
        return decision(Verdict.verified, [f"{summary} < alpha {track.alpha}"], test.p_value)
    return decision(Verdict.failed, [f"{summary} >= alpha {track.alpha}"], test.p_value)


def pick_seeds(runs: int, avoid: Collection[int] = ()) -> list[int]:
    """``runs`` distinct seeds the submitter could not predict (and none of ``avoid``): the
    verifier's own when it runs alone, the site's for the run jobs it hands to workers."""
    rng = random.SystemRandom()
    seeds: list[int] = []
    while len(seeds) < runs:
        s = rng.randrange(1, 2**31)
        if s not in seeds and s not in avoid:
            seeds.append(s)
    return seeds
