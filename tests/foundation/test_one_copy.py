"""One copy of each concept the redesign merged, and the value that won (REDESIGN.md, issue 19).

Each test names the rule and fails when a second copy would disagree again."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from contract.core_v1 import GPT2_XL_CORE
from contract.hardware import PEAKS, floor_seconds, peak_flops, sku_from_device_name
from contract.schema import CLOCK_TOLERANCE_REL, CLOCK_TOLERANCE_S
from contract.tracks import BUILTIN_TRACKS, TrackRules, clock_disagrees, clock_gap_allowed, clock_rule
from leaderboard.formatting import hms, usd
from leaderboard.tracks.schemas import TrackUpdate
from submissions.stats import one_sided_t_test
from trainer.plan import config_of, plan_of


def test_one_peak_table_for_mfu_and_the_floor() -> None:
    """Was two tables (the verifier's MFU table had no gh200 or CPU; the site's floor table had
    both): gh200 now has MFU and a floor; the CPU figure is a bound, so it floors but gives no MFU."""
    assert peak_flops("gh200") == PEAKS["gh200"].flops == 989e12
    assert floor_seconds(989e12 * 8 * 3600, "gh200", 8) == pytest.approx(3600.0)
    assert peak_flops("cpu") is None and floor_seconds(50e12, "cpu", 0) == pytest.approx(1.0)
    assert peak_flops("tpu-v3") is None and floor_seconds(1e20, "tpu-v3", 32) is None
    assert all(p.source and p.as_of for p in PEAKS.values())
    # every SKU a device name maps to has a peak
    for name in ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA GH200 480GB", "NVIDIA H200"):
        assert peak_flops(sku_from_device_name(name)) is not None, name


def test_one_clock_rule_for_the_verifier_and_the_site() -> None:
    """Was two formulas (the runner's with the global tolerance, the site's with the track's)."""
    clock = 1000.0
    allowed = CLOCK_TOLERANCE_S + CLOCK_TOLERANCE_REL * clock
    assert clock_gap_allowed(clock) == allowed
    assert not clock_disagrees(clock - allowed, clock)
    assert clock_disagrees(clock - allowed - 0.1, clock)
    assert clock_disagrees(clock + 0.1, clock)  # longer than the process: impossible when honest
    assert clock_disagrees(clock - 200.0, clock, tolerance=0.05)  # the track's tolerance when given
    assert f"{CLOCK_TOLERANCE_S:.0f} s + 5% of the clock" in clock_rule(0.05)


def test_one_gpt2_bar() -> None:
    assert {t.threshold for t in BUILTIN_TRACKS.values() if t.slug.startswith("gpt2")} == {GPT2_XL_CORE}


@pytest.mark.parametrize("field", ["threshold", "hardware_classes", "gpus_per_node", "nodes", "min_runs", "alpha"])
def test_an_admins_edit_and_the_contract_bound_a_track_alike(field: str) -> None:
    """Was two sets of bounds (min_runs >= 1 in the contract, >= 2 for an admin's edit): the
    contract's types now carry the stricter bounds and the edit takes them from there."""
    rules = TrackRules.model_json_schema()["properties"][field]
    edit = TrackUpdate.model_json_schema()["properties"][field]
    non_null = [s for s in edit["anyOf"] if s.get("type") != "null"]
    bounds = {k: v for k, v in non_null[0].items() if k in ("minimum", "maximum", "minItems", "maxItems")}
    rule_schema = rules["anyOf"][0] if "anyOf" in rules else rules
    assert bounds == {k: v for k, v in rule_schema.items() if k in bounds or k in ("minimum", "maximum")}
    with pytest.raises(ValueError):
        TypeAdapter(TrackRules).validate_python(BUILTIN_TRACKS["cpu-smoke"].model_dump() | {"min_runs": 1})


def test_one_t_test_for_the_verifier_and_the_site() -> None:
    """Was two (submissions/stats.py and leaderboard/entries/ranking.py): the site's seed of the
    public history and its pooled re-verification use the verifier's."""
    cores = [0.25373, 0.2584, 0.25489, 0.2568, 0.25732, 0.26765, 0.25119]  # nanochat's row 4
    assert 0.3 < one_sided_t_test(cores, GPT2_XL_CORE).p_value < 0.5


def test_one_plan_of_a_run_config() -> None:
    """Was seven hand-written `resolve(build_config(recipe, {**overrides, 'seed': seed}))` sites."""
    cfg = config_of("cpu_smoke", {"depth": 2}, 7)
    assert cfg.seed == 7 and cfg.model.depth == 2
    assert plan_of("cpu_smoke", {"depth": 2}, 7, 1).to_dict()["world_size"] == 1
    with pytest.raises(ValueError, match="no_such_key"):
        config_of("cpu_smoke", {"no_such_key": 1}, 0)


def test_one_format_of_durations_and_dollars() -> None:
    """Was two of each (the pages' and the CSV's h:mm:ss; the pages' and the chart's dollars)."""
    assert hms(1.65) == "1:39:00" and hms(168.0) == "168:00:00"
    assert usd(43008.0) == "$43,008" and usd(39.6) == "$39.60" and usd(0.001) == "<$0.01"


def test_one_reader_of_speedrun_home(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Was two readers with two defaults: both parts now read contract.speedrun_home, and each part's
    fallback when it is unset is named there (the site: the current directory; the trainer's
    downloads: ~/.cache/speedrun)."""
    from pathlib import Path

    from contract import speedrun_home
    from leaderboard.settings import default_home
    from trainer.data.paths import default_cache_dir

    monkeypatch.setenv("SPEEDRUN_HOME", str(tmp_path))
    assert speedrun_home() == default_home() == default_cache_dir() == Path(str(tmp_path)).resolve()
    monkeypatch.delenv("SPEEDRUN_HOME")
    assert speedrun_home() is None
    assert default_home() == Path.cwd().resolve()
    assert default_cache_dir() == Path.home() / ".cache" / "speedrun"
