"""Greedy continuations decoded in rounds the scorer drives (issue 22), against real peer processes: the model
process sees its own tokens only, a miss is not decoded further, all rounds share one deadline, and a reply
with the wrong shape or counts is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from submissions.model_client import Budget, ModelClient, ModelProcessError

# A model process that answers every round with token 7 (``sevens``, ``slow``: one a round, after 1 s), or
# breaks the protocol, logging every continue request it gets (contexts and counts) to argv[2].
PEER = r"""
import json, sys, time
import numpy as np
from submissions import wire
mode, log = sys.argv[1], sys.argv[2]
wire.read_message(0)
wire.write_message(1, {"ok": True, "max_positions": None})
while True:
    header, arrays = wire.read_message(0)
    if header["op"] == "bye":
        break
    tokens, lengths, counts = arrays
    contexts = [c.tolist() for c in np.split(tokens, np.cumsum(lengths)[:-1])] if len(lengths) else []
    with open(log, "a") as f:
        f.write(json.dumps({"contexts": contexts, "counts": counts.tolist()}) + "\n")
    n = len(counts)
    if mode == "slow":
        time.sleep(1.0)
    if mode in ("sevens", "slow"):
        out = [np.full(n, 7, dtype=np.int64), np.ones(n, dtype=np.int64)]
    elif mode == "too_many":
        out = [np.full(int(counts.sum()) + n, 7, dtype=np.int64), counts.astype(np.int64) + 1]
    elif mode == "none":
        out = [np.zeros(0, dtype=np.int64), np.zeros(n, dtype=np.int64)]
    else:  # one array
        out = [np.full(n, 7, dtype=np.int64)]
    wire.write_message(1, {"ok": True}, out)
"""


def _client(mode: str, log: Path, base_s: float = 30.0) -> tuple[subprocess.Popen[bytes], ModelClient]:
    proc = subprocess.Popen([sys.executable, "-c", PEER, mode, str(log)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    budget = Budget(load_s=10.0, base_s=base_s, multiple=1.0, seconds_per_token=0.0)
    client = ModelClient(proc.stdin.fileno(), proc.stdout.fileno(), vocab_size=100, budget=budget)
    client.hello()
    return proc, client


def _requests(log: Path) -> list[dict[str, list[int]]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_rounds_send_the_models_own_tokens_never_gold_and_a_miss_is_not_decoded_further(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    proc, client = _client("sevens", log)
    try:
        contexts = [[1, 2, 3], [4, 5], [6], [8, 9]]
        golds = [[7, 7, 7], [5, 7], [7, 9], []]  # a hit in 3 rounds, a miss at once, a miss at the 2nd token
        assert client.greedy_matches(contexts, golds, pad_id=0) == [True, False, False, True]
        assert client.requests == 1 + 3  # hello and three rounds
    finally:
        client.bye()
        proc.wait(timeout=10)
    assert _requests(log) == [
        {"contexts": [[1, 2, 3], [4, 5], [6]], "counts": [3, 2, 2]},  # an empty continuation is never asked
        {"contexts": [[1, 2, 3, 7], [6, 7]], "counts": [2, 1]},  # extended by the model's own 7s; [4, 5] left
        {"contexts": [[1, 2, 3, 7, 7]], "counts": [1]},  # [6, 7] missed (7 is not 9) and left
    ]


def test_all_rounds_share_one_deadline(tmp_path: Path) -> None:
    """A model process that decides one token a round, slowly, cannot stretch decoding past the deadline of the
    whole request (here the base of 3 s, for five rounds of 1 s)."""
    proc, client = _client("slow", tmp_path / "requests.jsonl", base_s=3.0)
    try:
        with pytest.raises(
            ModelProcessError,
            match=r"did not answer round \d of the continuations of 1 contexts \(3 s for all rounds\)",
        ):
            client.greedy_matches([[1, 2]], [[7, 7, 7, 7, 7]], pad_id=0)
        assert client.requests <= 1 + 3
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("too_many", "token counts outside 1"),
        ("none", "token counts outside 1"),
        ("one_array", "with 1 arrays, not 2"),
    ],
)
def test_a_round_answered_with_the_wrong_counts_or_arrays_is_refused(tmp_path: Path, mode: str, why: str) -> None:
    proc, client = _client(mode, tmp_path / "requests.jsonl")
    try:
        with pytest.raises(ModelProcessError, match=why):
            client.greedy_matches([[1, 2], [3]], [[7, 7], [7]], pad_id=0)
    finally:
        proc.kill()
        proc.wait()
