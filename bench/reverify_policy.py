"""How often re-verifying an entry that sits exactly at the threshold ends "verified" (issue 12).

The attack: an owner whose config's true mean CORE equals the track's threshold asks for
verification after verification until one passes. Each verification is k runs with CORE ~ N(threshold,
sigma). Compared in the same run, on the same simulated runs:

- ``independent``: the old site: each verification judged alone, the newest verdict replaces the
  last (the owner stops at the first pass);
- ``pooled_alpha``: every counted run pooled, the k-th look tested at plain alpha;
- ``policy``: the site's policy (``leaderboard.entries.pool.pooled_test``): a look passes when the
  verifier's own k runs pass at alpha (the site never upgrades its verdict) AND the pool of every
  counted run passes at alpha / looks; owners are capped at ``max_verifications`` = 3 looks (20
  looks, only an admin could ask for, shown too).

Prints one JSON object: the false-pass rate of each scheme per number of looks.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from leaderboard.entries.pool import pooled_test
from submissions.stats import one_sided_t_test


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=3, help="k runs per verification (the GPT-2 tracks' min_runs)")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--looks", type=int, nargs="+", default=[1, 3, 20])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    threshold, sigma = 0.256525, 0.005
    out: dict[str, object] = {"trials": args.trials, "runs_per_verification": args.runs, "alpha": args.alpha}
    for looks in args.looks:
        counts = {"independent": 0, "pooled_alpha": 0, "policy": 0}
        for _ in range(args.trials):
            cores = rng.normal(threshold, sigma, size=(looks, args.runs))
            if any(one_sided_t_test(list(cores[i]), threshold).p_value < args.alpha for i in range(looks)):
                counts["independent"] += 1
            pooled = [list(cores[: i + 1].ravel()) for i in range(looks)]
            if any(one_sided_t_test(p, threshold).p_value < args.alpha for p in pooled):
                counts["pooled_alpha"] += 1
            own = [one_sided_t_test(list(cores[i]), threshold).p_value < args.alpha for i in range(looks)]
            if any(
                own[i] and pooled_test(p, threshold=threshold, alpha=args.alpha, looks=i + 1)[0]
                for i, p in enumerate(pooled)
            ):
                counts["policy"] += 1
        out[f"looks_{looks}"] = {k: v / args.trials for k, v in counts.items()}
        print(f"looks {looks}: {out[f'looks_{looks}']}", file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
