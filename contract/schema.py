"""The contract between the trainer, the verifier and the site (schema version 1).

The trainer writes a `RunResult` as ``result.json`` at the end of every run; the verifier and
the service read exactly that. Every model rejects unknown fields, and every bound names its
field in the error. Bump ``SCHEMA_VERSION`` (and accept the old one explicitly) on any change
that an old reader could misread.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contract.core_v1 import CORE_V1_TASKS, PROTOCOL

SCHEMA_VERSION: Final = 1

# What is timed, by rules version.
# `speedrun-v1`: every training step, device-synchronized, after an untimed and reset compile
#   warm-up: the trainer's own clock (trainer/clock.py). Since speedrun-v2 it is self-reported only:
#   a trainer's result.json carries it, no track ranks it.
# `speedrun-v2`: the verifier's own clock over the sealed training process (launch to its final
#   checkpoint), CORE/val_bpb re-scored by the verifier's code, the worker's hardware (RULES.md).
#   Every built-in track ranks under it.
# `nanochat-2026`: nanochat's rule (steps 0-10 not timed), used only by imported public history.
RulesVersion = Literal["speedrun-v1", "speedrun-v2", "nanochat-2026"]
SELF_TIMED_RULES_VERSION: RulesVersion = "speedrun-v1"  # what a trainer's own result.json is timed under
RANKED_RULES_VERSION: RulesVersion = "speedrun-v2"  # what the verifier times and the tracks rank
# speedrun-v2: the trainer's self-reported timed region (v1) is flagged when it differs from the
# verifier's clock by more than CLOCK_TOLERANCE_S + CLOCK_TOLERANCE_REL x the verifier's clock
# (the clock also holds process start-up, data loading, compile warm-up and in-process eval).
CLOCK_TOLERANCE_REL = 0.5
CLOCK_TOLERANCE_S = 120.0
# How val_bpb counts bytes (trainer/evaluation/bpb.py); every run result carries it (software['val_bpb']).
VAL_BPB_NOTE = "true byte length; reads ~0.05% higher than the record's logged 0.718 (invalid UTF-8 token = 3 bytes)"
# How CORE is computed: the nanochat harness with the v1 random baselines.
EvalProtocol = Literal["core-v1"]
EVAL_PROTOCOL: EvalProtocol = PROTOCOL

# Bounds a submission must respect (also what the pre-screen checks before GPU time is spent).
MAX_CLAIMED_RESULTS = 20
MAX_LOG_FILES = 10
MAX_LOG_FILE_BYTES = 2 * 1024 * 1024
MAX_LOGS_TOTAL_BYTES = 8 * 1024 * 1024
MAX_NODES = 64
MAX_GPUS_PER_NODE = 16

# Bounds that keep every stored number finite and every sum of them too: integers fit a signed
# 64-bit column, floats stay far below overflow even summed and squared over MAX_CLAIMED_RESULTS.
MAX_INT = 2**63 - 1
MAX_FLOAT = 1e30
MAX_JSON_DEPTH = 32  # nesting of any contract document (config and plan are a few levels deep)
MAX_CORE_TASKS = len(CORE_V1_TASKS)
MAX_DOCUMENT_BYTES = 64 * 1024  # a run's resolved config or plan, as JSON
MAX_MAP_ENTRIES = 200  # overrides, software versions

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
GitSha = Annotated[str, Field(pattern=r"^[0-9a-f]{7,40}$")]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
NonNegFloat = Annotated[float, Field(ge=0, le=MAX_FLOAT, allow_inf_nan=False)]
Finite = Annotated[float, Field(ge=-MAX_FLOAT, le=MAX_FLOAT, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
CoreScore = Annotated[float, Field(ge=-100.0, le=1.0, allow_inf_nan=False)]  # centered accuracy <= 1
Timestamp = Annotated[datetime, Field(strict=False)]  # an ISO 8601 string in JSON
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def json_problem(data: Any, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """The first (path, problem) of a JSON document nested deeper than ``max_depth`` or holding a
    NUL character (no SQL text column stores one); None when there is none."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > max_depth:
            return path or "(root)", f"nested deeper than {max_depth} levels"
        if isinstance(value, str):
            if "\x00" in value:
                return path or "(root)", "NUL characters are not allowed"
        elif isinstance(value, dict):
            for k, v in value.items():
                key = str(k)
                if "\x00" in key:
                    return path or "(root)", "NUL characters are not allowed in keys"
                stack.append((v, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((v, f"{path}.{i}" if path else str(i), depth + 1) for i, v in enumerate(value))
    return None


class Contract(BaseModel):
    """Base of every contract model: unknown fields are an error, values are immutable, and types
    are strict (a number is a JSON number, never a numeric string; timestamps are ISO strings)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)


class Document(Contract):
    """A top-level contract document: bounded nesting and no NUL characters anywhere (422 naming the path)."""

    @model_validator(mode="before")
    @classmethod
    def _bounded_tree(cls, data: Any) -> Any:
        problem = json_problem(data)
        if problem is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")
        return data


class TrainerSource(Contract):
    """Which trainer code runs the config.

    ``reference``: this project's trainer at a released version or git commit.
    ``git``: a fork, by clone URL and the full commit to check out.
    The shorthand strings ``"reference@0.1.0"`` and ``"https://host/owner/repo@<40-hex commit>"``
    (a fork) are accepted on input.
    """

    kind: Literal["reference", "git"]
    version: str | None = Field(default=None, max_length=64, description="reference: version or git sha")
    git_url: str | None = Field(default=None, max_length=500)
    commit: GitSha | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data.startswith(("https://", "file://")):  # a fork: <clone URL>@<commit>
                url, sep, commit = data.rpartition("@")
                if not sep or not url:
                    raise ValueError("trainer: expected '<https clone URL>@<40-hex commit>' for a fork")
                return {"kind": "git", "git_url": url, "commit": commit}
            kind, sep, version = data.partition("@")
            if kind != "reference" or not sep or not version:
                raise ValueError(
                    "trainer: expected 'reference@<version or commit>', '<https clone URL>@<40-hex commit>' "
                    "or an object"
                )
            return {"kind": "reference", "version": version}
        return data

    @model_validator(mode="after")
    def _complete(self) -> TrainerSource:
        if self.kind == "reference":
            if not self.version:
                raise ValueError("trainer.version: required when trainer.kind is 'reference'")
            if self.git_url or self.commit:
                raise ValueError("trainer.git_url/commit: only for trainer.kind 'git'")
        else:
            if not self.git_url or not re.match(r"^(https://[A-Za-z0-9.-]+/|file:///)\S+$", self.git_url):
                raise ValueError(
                    "trainer.git_url: an https:// clone URL is required (ssh and other schemes are refused; "
                    "file:// only where the site allows local forks)"
                )
            if not self.commit or len(self.commit) != 40:
                raise ValueError("trainer.commit: the full 40-hex commit is required for a git trainer")
        return self

    def label(self) -> str:
        if self.kind == "reference":
            return f"reference@{self.version}"
        return f"{self.git_url}@{self.commit}"


OverrideValue = int | float | bool | str | None


class RunConfig(Contract):
    """What to run: the recipe, its overrides, the hardware it is meant for, and a seed."""

    schema_version: Literal[1] = SCHEMA_VERSION
    trainer: TrainerSource
    recipe: Slug
    overrides: dict[str, OverrideValue] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)
    hardware_class: Slug = Field(description="GPU SKU class such as 'h100-sxm', or 'cpu'")
    gpus_per_node: int = Field(ge=0, le=MAX_GPUS_PER_NODE, description="0 for the CPU track")
    nodes: int = Field(default=1, ge=1, le=MAX_NODES)
    seed: int = Field(default=0, ge=0, lt=2**31)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if (self.hardware_class == "cpu") != (self.gpus_per_node == 0):
            raise ValueError("gpus_per_node: must be 0 exactly when hardware_class is 'cpu'")
        if "seed" in self.overrides:
            raise ValueError("overrides.seed: give the seed in the seed field, not as an override")
        return self

    @property
    def world_size(self) -> int:
        return max(1, self.gpus_per_node) * self.nodes


class CoreTaskResult(Contract):
    accuracy: Fraction
    centered: CoreScore
    n: Count


class CoreResult(Contract):
    """CORE of one model: the aggregate and each task (protocol core-v1 has 22)."""

    protocol: EvalProtocol = EVAL_PROTOCOL
    core: CoreScore
    bundle_sha256: Sha256
    max_per_task: int | None = Field(default=None, ge=1, le=MAX_INT)
    tasks: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")], CoreTaskResult] = Field(
        max_length=MAX_CORE_TASKS, description=f"at most the protocol's {MAX_CORE_TASKS} tasks"
    )
    seconds: NonNegFloat = 0.0


class HardwareFingerprint(Contract):
    """What a run ran on. ``sku`` is the normalized class ('h100-sxm', 'h200', 'cpu', ...)."""

    sku: Slug
    device_type: Literal["cpu", "cuda"]
    device_name: str = Field(max_length=200)
    device_count: int = Field(ge=1, le=1024, description="devices per node used by the run")
    nodes: int = Field(default=1, ge=1, le=100_000)
    device_memory_bytes: int | None = Field(default=None, ge=0, le=MAX_INT)
    driver_version: str | None = None
    cuda_version: str | None = None
    nccl_version: str | None = None
    torch_version: str
    cpu_model: str | None = None
    cpu_count: int | None = Field(default=None, ge=1, le=1_000_000)


class Digests(Contract):
    """Content digests of everything a run consumed, so a reproduction can prove it used the same."""

    data_manifest_sha256: Sha256 | None = None
    shards: dict[str, Sha256] = Field(default_factory=dict, description="shard file name -> sha256")
    tokenizer_sha256: Sha256 | None = None
    eval_bundle_sha256: Sha256 | None = None
    metrics_log_sha256: Sha256 | None = None


class RunResult(Document):
    """One finished training run, as the trainer writes it to ``result.json``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    rules_version: RulesVersion = SELF_TIMED_RULES_VERSION
    run_id: str = Field(min_length=1, max_length=100)
    recipe: Slug
    overrides: dict[str, OverrideValue] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)
    seed: int = Field(ge=0, lt=2**31)
    trainer_version: str = Field(max_length=64)
    trainer_commit: GitSha | None = None
    config: dict[str, Any] = Field(description="the resolved TrainConfig, as a JSON object (<= 64 KiB)")
    plan: dict[str, Any] = Field(description="plan.resolve(): dims, params, FLOPs, batch, steps, LRs (<= 64 KiB)")
    training_seconds: NonNegFloat = Field(description="the timed region under rules_version")
    wall_seconds: NonNegFloat = Field(description="the whole process")
    steps: Count
    tokens: Count
    flops: NonNegFloat
    final_loss: Finite | None = None
    val_bpb: NonNegFloat | None = None
    core: CoreResult | None = None
    mfu: Fraction | None = Field(default=None, description="bf16-dense-peak MFU; null on CPU")
    attention_backend: str = Field(max_length=32)
    hardware: HardwareFingerprint
    software: dict[str, str] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES, description="package -> version")
    digests: Digests = Field(default_factory=Digests)
    started_at: Timestamp
    finished_at: Timestamp
    # Set by the verifier only (a trainer leaves them out; whatever a run writes there is replaced):
    sealed: bool | None = Field(default=None, description="the run ran in the verifier's sandbox (bwrap)")
    self_reported_training_seconds: NonNegFloat | None = Field(
        default=None, description="speedrun-v2: the trainer's own timed region (v1), beside the verifier's clock"
    )
    clock_disagrees: bool | None = Field(
        default=None, description="speedrun-v2: self-reported and verifier time differ beyond the tolerance"
    )

    @field_validator("config", "plan")
    @classmethod
    def _small(cls, v: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(v, separators=(",", ":")))
        if size > MAX_DOCUMENT_BYTES:
            raise ValueError(f"{size} bytes as JSON, more than {MAX_DOCUMENT_BYTES}")
        return v

    @field_validator("started_at", "finished_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("timestamps must carry a timezone (UTC)")
        return v

    @property
    def training_hours(self) -> float:
        return self.training_seconds / 3600.0

    @property
    def core_score(self) -> float | None:
        return None if self.core is None else self.core.core


class LogFile(Contract):
    """A text log attached to a submission (shown escaped, stored by digest)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    content: str = Field(max_length=MAX_LOG_FILE_BYTES)

    @field_validator("content")
    @classmethod
    def _bytes(cls, v: str) -> str:
        if len(v.encode()) > MAX_LOG_FILE_BYTES:
            raise ValueError(f"log file larger than {MAX_LOG_FILE_BYTES} bytes")
        return v


class Submission(Document):
    """What a researcher submits: a config, the results they claim for it, and their logs."""

    schema_version: Literal[1] = SCHEMA_VERSION
    track: Slug
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    contributors: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1, max_length=20)
    run_config: RunConfig
    claimed_results: list[RunResult] = Field(min_length=1, max_length=MAX_CLAIMED_RESULTS)
    logs: list[LogFile] = Field(default_factory=list, max_length=MAX_LOG_FILES)
    idempotency_key: str = Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")

    @model_validator(mode="after")
    def _consistent(self) -> Submission:
        total = sum(len(f.content.encode()) for f in self.logs)
        if total > MAX_LOGS_TOTAL_BYTES:
            raise ValueError(f"logs: {total} bytes in all, more than {MAX_LOGS_TOTAL_BYTES}")
        names = [f.name for f in self.logs]
        if len(set(names)) != len(names):
            raise ValueError("logs: file names must be distinct")
        for i, r in enumerate(self.claimed_results):
            if r.recipe != self.run_config.recipe:
                raise ValueError(f"claimed_results[{i}].recipe: {r.recipe!r} is not run_config.recipe")
        return self


class Verdict(StrEnum):
    verified = "verified"  # the track's rule holds on the verifier's runs
    failed = "failed"  # the runs completed and the rule does not hold
    inconclusive = "inconclusive"  # the runs cannot decide (too few, repeated seeds)
    error = "error"  # the verifier could not produce valid runs


class StatSummary(Contract):
    mean: Finite
    std: NonNegFloat = Field(description="sample std (n-1); 0 when n == 1")
    n: int = Field(ge=1, le=MAX_INT)


class ClaimDeltas(Contract):
    """Verified mean minus claimed mean, per figure; ``flagged`` when a claim is far off."""

    training_hours: Finite | None = None
    training_hours_ratio: Finite | None = Field(default=None, description="verified / claimed")
    core: Finite | None = None
    val_bpb: Finite | None = None
    flagged: bool = False
    notes: list[str] = Field(default_factory=list)


MAX_FORK_DIFF_FILES = 20_000  # files a ForkDiff lists; past it ``files_truncated`` and no approval
FORK_REVIEW_NOTE = "fork review: "  # the prefix of a report's reason about its fork diff (or its absence)
# what a reviewer must look at twice: attribute/submodule/LFS files (they change how git shows or
# fetches the tree), links, binary and large files (listed with size and sha256), deletions
ForkDiffFlag = Literal[
    "gitattributes", "gitmodules", "lfsconfig", "lfs-pointer", "submodule", "symlink", "binary", "large", "deleted"
]


class ForkDiffFile(Contract):
    path: str = Field(min_length=1, max_length=500)
    insertions: Count
    deletions: Count
    binary: bool = Field(default=False, description="the blob has a NUL byte (shown as text in the diff anyway)")
    size_bytes: Count | None = Field(default=None, description="the blob's size (the old blob's for a deletion)")
    sha256: Sha256 | None = Field(default=None, description="sha256 of that blob's bytes (None: a submodule)")
    flags: list[ForkDiffFlag] = Field(default_factory=list, max_length=16)


class ForkDiff(Contract):
    """A fork's diff against the reference trainer at the commit it branched from (for review).

    The diff is a text diff of every changed file whatever the fork's ``.gitattributes`` say
    (``submissions.review``); ``files`` lists every changed file, with ``files_truncated`` when
    more than ``MAX_FORK_DIFF_FILES`` changed; ``truncated`` when the diff passed its size cap.
    Either makes the diff unreviewable: the site refuses to approve it."""

    base_commit: GitSha = Field(description="the reference commit the fork branched from (merge base)")
    files_changed: Count
    insertions: Count
    deletions: Count
    files: list[ForkDiffFile] = Field(default_factory=list, max_length=MAX_FORK_DIFF_FILES)
    files_truncated: bool = Field(default=False, description="more files changed than ``files`` lists")
    flags: list[ForkDiffFlag] = Field(default_factory=list, max_length=16, description="the flags of its files")
    artifact: str = Field(default="fork.diff", max_length=200, description="artifact name of the unified diff")
    sha256: Sha256 = Field(description="sha256 of the uploaded diff artifact")
    size_bytes: Count
    truncated: bool = Field(default=False, description="the artifact was cut at its size cap")


class VerifierIdentity(Contract):
    id: str = Field(min_length=1, max_length=100)
    version: str = Field(max_length=64)
    hardware: HardwareFingerprint | None = None


class VerificationReport(Document):
    """The verifier's decision on a run config, from its own k runs."""

    schema_version: Literal[1] = SCHEMA_VERSION
    track: Slug
    rules_version: RulesVersion = SELF_TIMED_RULES_VERSION
    protocol: EvalProtocol = EVAL_PROTOCOL
    verifier: VerifierIdentity
    run_config: RunConfig
    runs: list[RunResult] = Field(default_factory=list)
    core: StatSummary | None = None
    core_threshold: CoreScore
    alpha: Fraction
    p_value: Fraction | None = None
    training_hours: StatSummary | None = None
    val_bpb: StatSummary | None = None
    deltas: ClaimDeltas | None = None
    verdict: Verdict = Field(strict=False)
    reasons: list[str] = Field(default_factory=list)
    log_tail: str | None = Field(default=None, max_length=64_000)
    created_at: Timestamp
    sealed: bool | None = Field(default=None, description="every step ran in the sandbox; None: older reports")
    fork_diff: ForkDiff | None = None
