"""Statistics (known values) and the track's verdict rule, one rule per test."""

from __future__ import annotations

import math
from typing import Any

import pytest

from contract.schema import RunResult, Verdict
from contract.tracks import BUILTIN_TRACKS
from submissions.rules import claim_deltas, decide
from submissions.stats import mean, one_sided_t_test, sample_std
from tests.submissions import factories
from tests.submissions.factories import CPU, H200, core, gpu_config


def run_result(**kw: Any) -> RunResult:
    """A verifier's run (rules speedrun-v2, the built-in tracks' rules)."""
    return factories.run_result(**{"rules_version": "speedrun-v2", **kw})


TRACK = BUILTIN_TRACKS["gpt2-8xh100"]  # k >= 3, alpha 0.05, CORE > 0.256525, 8 x h100-sxm
CONFIG = gpu_config()


def good_runs(n: int = 3, scores: tuple[float, ...] = (0.27, 0.268, 0.272)) -> list:
    return [run_result(seed=i + 1, core_score=scores[i % len(scores)]) for i in range(n)]


# -- mean, std, t-test -------------------------------------------------------------------------


def test_mean_and_sample_std() -> None:
    assert mean([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) == 5.0
    assert sample_std([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) == pytest.approx(math.sqrt(32 / 7))
    assert sample_std([3.0]) == 0.0


def test_t_test_textbook_value() -> None:
    # x = 1..5 against 2: t = 1 / (sqrt(2.5) / sqrt(5)) = sqrt(2), 4 dof; tables give p = 0.1151.
    test = one_sided_t_test([1.0, 2.0, 3.0, 4.0, 5.0], 2.0)
    assert test.t == pytest.approx(math.sqrt(2))
    assert test.df == 4
    assert test.p_value == pytest.approx(0.11510, abs=1e-5)


@pytest.mark.parametrize("values", [[0.1, 0.4, 0.7], [0.30, 0.31, 0.29], [-1.0, 0.5, 3.0]])
def test_t_test_matches_the_closed_form_for_two_dof(values: list[float]) -> None:
    # Student t with 2 dof has the survival function 1/2 (1 - t / sqrt(t^2 + 2)).
    test = one_sided_t_test(values, 0.2)
    t = (mean(values) - 0.2) / (sample_std(values) / math.sqrt(3))
    assert test.p_value == pytest.approx(0.5 * (1 - t / math.sqrt(t * t + 2)), rel=1e-9)


def test_t_test_of_nanochat_run_4_does_not_reach_p_001() -> None:
    # RULES.md: the seven CORE values of the public record's row 4 (mean 0.25714) fail p < 0.01.
    values = [0.25373, 0.2584, 0.25489, 0.2568, 0.25732, 0.26765, 0.25119]
    test = one_sided_t_test(values, 0.256525)
    assert mean(values) == pytest.approx(0.25714, abs=1e-5)
    assert test.p_value == pytest.approx(0.38318, abs=1e-4)


def test_t_test_without_spread() -> None:
    assert one_sided_t_test([0.3, 0.3], 0.2).p_value == 0.0
    assert one_sided_t_test([0.1, 0.1], 0.2).p_value == 1.0


def test_t_test_needs_two_values() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        one_sided_t_test([0.3], 0.2)


# -- the verdict rule --------------------------------------------------------------------------


def test_clear_pass_is_verified() -> None:
    d = decide(good_runs(), track=TRACK, run_config=CONFIG)
    assert d.verdict is Verdict.verified, d.reasons
    assert d.p_value is not None and d.p_value < TRACK.alpha
    assert d.core is not None and d.core.n == 3 and d.core.mean == pytest.approx(0.27)
    assert d.training_hours is not None and d.training_hours.mean == pytest.approx(1.0)


def test_same_seed_twice_is_inconclusive() -> None:
    runs = good_runs()
    runs[2] = run_result(seed=runs[0].seed, core_score=0.272)
    d = decide(runs, track=TRACK, run_config=CONFIG)
    assert d.verdict is Verdict.inconclusive
    assert any("seeds must be distinct" in r for r in d.reasons)


def test_too_few_runs_is_inconclusive() -> None:
    d = decide(good_runs(2), track=TRACK, run_config=CONFIG)
    assert d.verdict is Verdict.inconclusive
    assert any("at least 3" in r for r in d.reasons)


def test_p_at_or_above_alpha_fails() -> None:
    runs = good_runs(3, scores=(0.25, 0.26, 0.27))  # mean above the bar, far too noisy
    d = decide(runs, track=TRACK, run_config=CONFIG)
    assert d.verdict is Verdict.failed
    assert d.p_value is not None and d.p_value >= TRACK.alpha
    assert any(">= alpha" in r for r in d.reasons)


def test_mean_below_threshold_fails() -> None:
    d = decide(good_runs(3, scores=(0.20, 0.21, 0.22)), track=TRACK, run_config=CONFIG)
    assert d.verdict is Verdict.failed


def test_wrong_gpu_fails() -> None:
    runs = [run_result(seed=i + 1, core_score=0.27, hardware=H200) for i in range(3)]
    d = decide(runs, track=TRACK, run_config=CONFIG)
    assert d.verdict is Verdict.failed
    assert any("h200" in r for r in d.reasons)


def test_wrong_gpu_count_fails() -> None:
    four = run_result().hardware.model_copy(update={"device_count": 4})
    runs = [run_result(seed=i + 1, core_score=0.27, hardware=four) for i in range(3)]
    assert decide(runs, track=TRACK, run_config=CONFIG).verdict is Verdict.failed


def test_cpu_run_on_a_gpu_track_fails() -> None:
    runs = [run_result(seed=i + 1, hardware=CPU) for i in range(3)]
    assert decide(runs, track=TRACK, run_config=CONFIG).verdict is Verdict.failed


def test_other_rules_version_fails() -> None:
    runs = [run_result(seed=i + 1, core_score=0.27, rules_version="nanochat-2026") for i in range(3)]
    d = decide(runs, track=TRACK, run_config=CONFIG)
    assert d.verdict is Verdict.failed
    assert any("rules version" in r for r in d.reasons)


def test_missing_core_fails() -> None:
    runs = good_runs()
    runs[1] = run_result(seed=2, core_score=None)
    d = decide(runs, track=TRACK, run_config=CONFIG)
    assert d.verdict is Verdict.failed
    assert any("no CORE" in r for r in d.reasons)


def test_subsampled_core_fails_a_full_eval_track() -> None:
    runs = [run_result(seed=i + 1, core=core(0.27, max_per_task=100)) for i in range(3)]
    d = decide(runs, track=TRACK, run_config=CONFIG)
    assert d.verdict is Verdict.failed
    assert any("100 per task" in r for r in d.reasons)


def test_unpinned_bundle_fails_a_pinned_track() -> None:
    track = TRACK.model_copy(update={"bundle_sha256": "e" * 64})
    assert decide(good_runs(), track=track, run_config=CONFIG).verdict is Verdict.failed


def test_runs_of_another_config_fail() -> None:
    runs = [run_result(seed=i + 1, core_score=0.27, overrides={"depth": 26}) for i in range(3)]
    assert decide(runs, track=TRACK, run_config=CONFIG).verdict is Verdict.failed


def test_no_runs_is_an_error() -> None:
    assert decide([], track=TRACK, run_config=CONFIG).verdict is Verdict.error


# -- claims beside the verified numbers --------------------------------------------------------


def test_claims_far_from_verified_are_flagged() -> None:
    claimed = [run_result(seed=9, core_score=0.30, training_seconds=3000.0)]
    d = decide(good_runs(), track=TRACK, run_config=CONFIG, claimed=claimed)
    assert d.verdict is Verdict.verified  # a flag never changes the verdict
    assert d.deltas is not None and d.deltas.flagged
    assert d.deltas.training_hours_ratio == pytest.approx(1.2)
    assert d.deltas.core == pytest.approx(0.27 - 0.30)
    assert len(d.deltas.notes) == 2


def test_claims_close_to_verified_are_not_flagged() -> None:
    claimed = [run_result(seed=9, core_score=0.271, training_seconds=3550.0)]
    deltas = claim_deltas(claimed, good_runs())
    assert deltas is not None and not deltas.flagged, deltas.notes


def test_claims_with_other_data_digests_are_flagged() -> None:
    other = run_result().digests.model_copy(update={"tokenizer_sha256": "d" * 64})
    claimed = [run_result(seed=9, core_score=0.27, digests=other)]
    deltas = claim_deltas(claimed, good_runs())
    assert deltas is not None and deltas.flagged
    assert any("tokenizer" in n for n in deltas.notes)


def test_a_single_run_cannot_be_tested_even_when_the_track_allows_it() -> None:
    track = TRACK.model_copy(update={"min_runs": 1})
    d = decide(good_runs(1), track=track, run_config=CONFIG)
    assert d.verdict is Verdict.inconclusive
    assert any("at least 2 runs" in r for r in d.reasons)


def test_overrides_that_repeat_the_recipe_defaults_are_the_same_run() -> None:
    # The trainer records only the overrides that change the recipe.
    from trainer.config import RECIPES

    default_steps = RECIPES["cpu_smoke"]().horizon.num_iterations
    config = gpu_config(
        recipe="cpu_smoke", hardware_class="cpu", gpus_per_node=0, overrides={"num_iterations": default_steps}
    )
    track = BUILTIN_TRACKS["cpu-smoke"]
    runs = [
        run_result(seed=i + 1, core_score=0.3 + i / 100, hardware=CPU, recipe="cpu_smoke", overrides={})
        for i in range(track.min_runs)
    ]
    assert decide(runs, track=track, run_config=config).verdict is Verdict.verified
    other = config.model_copy(update={"overrides": {"num_iterations": 7}})
    assert decide(runs, track=track, run_config=other).verdict is Verdict.failed
