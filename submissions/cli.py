"""Command-line groups of this part: submit, verify, worker.

argparse only at import; the heavy imports (pydantic models, httpx, torch) happen inside the
command functions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.cli import positive_int
from trainer.doctor.cli import register as register_doctor  # light: argparse only

if TYPE_CHECKING:
    from contract.schema import RunConfig, RunResult, Submission
    from contract.tracks import TrackRules

TOKEN_ENV = "SPEEDRUN_TOKEN"
TOKEN_FILE_ENV = "SPEEDRUN_TOKEN_FILE"


def _err(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _token(args: argparse.Namespace) -> str | None:
    """--token, else the file named by $SPEEDRUN_TOKEN_FILE (mode 0600), else $SPEEDRUN_TOKEN.

    The variables are removed from this process's environment once read: no child inherits them."""
    token: str | None = args.token or None
    path = os.environ.pop(TOKEN_FILE_ENV, None)
    env_token = os.environ.pop(TOKEN_ENV, None)
    if token is None and path:
        st = os.stat(path)
        if st.st_mode & 0o077:
            raise ValueError(f"${TOKEN_FILE_ENV} {path}: mode {oct(st.st_mode & 0o777)}, must be 0600 (owner only)")
        token = Path(path).read_text(encoding="utf-8").strip() or None
    return token or env_token or None


# -- submit ----------------------------------------------------------------------------------


def _load_submission(args: argparse.Namespace) -> Submission:
    """The submission of the command line (ValueError naming the problem)."""
    from pydantic import ValidationError

    from contract.schema import Submission
    from submissions.client import submission_from_run_dir, validation_messages

    if args.from_run:
        missing = [name for name in ("track", "title") if not getattr(args, name)]
        if missing or not args.contributor:
            need = [f"--{m}" for m in missing] + ([] if args.contributor else ["--contributor"])
            raise ValueError(f"--from-run needs {', '.join(need)}")
        try:
            return submission_from_run_dir(
                Path(args.from_run[0]),
                track=args.track,
                title=args.title,
                contributors=list(args.contributor),
                description=args.description or "",
                idempotency_key=args.idempotency_key,
                trainer=args.trainer,
                extra_run_dirs=[Path(d) for d in args.from_run[1:]],
            )
        except ValidationError as exc:
            raise ValueError("; ".join(validation_messages(exc))) from exc
    if not args.submission:
        raise ValueError("give a submission JSON file, or --from-run DIR")
    path = Path(args.submission)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        return Submission.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise ValueError(f"{path}: " + "; ".join(validation_messages(exc))) from exc


def cmd_submit(args: argparse.Namespace) -> int:
    from contract.tracks import BUILTIN_TRACKS
    from submissions.client import Client, ClientError
    from submissions.verify import prescreen

    try:
        submission = _load_submission(args)
    except ValueError as exc:
        return _err(str(exc))
    track = BUILTIN_TRACKS.get(submission.track)
    if track is not None:
        # with a site, its track settings decide the claim's test (an admin may have moved the bar)
        problems = prescreen(submission, track, test_the_claim=not args.server)
        if problems:
            for p in problems:
                print(f"error: {p}", file=sys.stderr)
            return 2
    else:
        print(f"note: track {submission.track!r} is not built in; the server checks it", file=sys.stderr)
    if args.dry_run:
        print(submission.model_dump_json(indent=2))
        print("local checks passed (config, claimed runs against the track's test)", file=sys.stderr)
        if not args.server:
            print("note: --server URL also runs the site's checks (copies of other entries, quota)", file=sys.stderr)
            return 0
        try:
            with Client(args.server, _token(args)) as client:
                found = client.preflight(submission)
        except (ClientError, ValueError) as exc:
            return _err(f"the site would refuse this submission: {exc}")
        for line in found.get("checks", []):
            print(f"ok: {line}", file=sys.stderr)
        print("dry run: the site would accept this submission; nothing was stored", file=sys.stderr)
        return 0
    if not args.server:
        return _err("--server URL is required (or --dry-run to only validate)")
    try:
        with Client(args.server, _token(args)) as client:
            accepted = client.submit(submission)
    except (ClientError, ValueError) as exc:
        return _err(f"submission refused: {exc}")
    print(accepted.url)
    print(
        f"submission {accepted.submission_id}, entry {accepted.entry_id}, status {accepted.status}"
        + (f", verification job {accepted.job_id}" if accepted.job_id is not None else ""),
        file=sys.stderr,
    )
    return 0


# -- verify ----------------------------------------------------------------------------------


def _load_verify_input(path: Path) -> tuple[RunConfig, list[RunResult], str | None]:
    """A run config from: a Submission JSON, a RunConfig JSON, a RunResult JSON or a run directory.

    Returns (config, claimed results, track slug named by the input or None)."""
    from pydantic import ValidationError

    from contract import RESULT_FILE
    from contract.schema import RunConfig, RunResult, Submission
    from submissions.client import read_run_result, run_config_from_result, validation_messages

    if path.is_dir():
        result = read_run_result(path)
        return run_config_from_result(result), [result], None
    if not path.is_file():
        raise ValueError(f"{path}: no such file or run directory")
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if "run_config" in data:
        kind: type[Submission] | type[RunResult] | type[RunConfig] = Submission
    elif "training_seconds" in data or path.name == RESULT_FILE:
        kind = RunResult
    else:
        kind = RunConfig
    try:
        obj = kind.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{path} ({kind.__name__}): " + "; ".join(validation_messages(exc))) from exc
    if isinstance(obj, Submission):
        return obj.run_config, list(obj.claimed_results), obj.track
    if isinstance(obj, RunResult):
        return run_config_from_result(obj), [obj], None
    return obj, [], None


def _resolve_track(args: argparse.Namespace, named: str | None, config: RunConfig) -> TrackRules:
    from pydantic import ValidationError

    from contract.tracks import BUILTIN_TRACKS, TrackRules

    if args.track_file:
        try:
            return TrackRules.model_validate_json(Path(args.track_file).read_bytes())
        except (OSError, ValidationError) as exc:
            raise ValueError(f"--track-file {args.track_file}: {exc}") from exc
    slug = args.track or named or ("cpu-smoke" if config.hardware_class == "cpu" else None)
    if slug is None:
        raise ValueError("--track: which track to decide against (" + ", ".join(BUILTIN_TRACKS) + ")")
    if slug not in BUILTIN_TRACKS:
        raise ValueError(f"--track: unknown track {slug!r}; built in: {', '.join(BUILTIN_TRACKS)} (or --track-file)")
    return BUILTIN_TRACKS[slug]


def cmd_verify(args: argparse.Namespace) -> int:
    if args.export_schema:
        from submissions.schema_export import export_json_schemas

        for p in export_json_schemas(Path(args.export_schema)):
            print(p)
        return 0
    if not args.input:
        return _err("give a run config, submission, run result or run directory to verify")
    if not args.out:
        return _err("--out DIR is required")
    from tqdm import tqdm

    from contract.protocol import JobProgress
    from submissions.verify import verify

    try:
        config, claimed, named = _load_verify_input(Path(args.input))
        track = _resolve_track(args, named, config)
    except ValueError as exc:
        return _err(str(exc))
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        return _err(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    from submissions.sandbox import sandbox_problem

    if (problem := sandbox_problem()) is not None:
        print(
            f"note: no sandbox here ({problem}): the installed reference trainer runs UNSEALED, forks are refused",
            file=sys.stderr,
        )
    runs = args.runs if args.runs is not None else track.min_runs
    if runs < track.min_runs:
        print(f"note: track {track.slug} needs {track.min_runs} runs; {runs} can only be inconclusive", file=sys.stderr)
    bar = tqdm(total=None, unit="step", file=sys.stderr, dynamic_ncols=True, disable=args.quiet)
    current = {"run": -1}

    def progress(p: JobProgress) -> None:
        if p.run_index != current["run"]:
            current["run"] = p.run_index
            bar.reset(total=p.steps)
        if p.steps is not None and bar.total != p.steps:
            bar.total = p.steps
        if p.step is not None:
            bar.n = p.step
        bar.set_description(p.message)
        bar.refresh()

    try:
        report = verify(
            config,
            track=track,
            runs=runs,
            out_dir=Path(args.out),
            claimed=claimed,
            seeds=seeds,
            progress=progress,
            run_timeout_s=args.run_timeout_s,
            smoke_steps=args.smoke_steps,
            allow_local_git=args.allow_local_git,
        )
    except ValueError as exc:
        bar.close()
        return _err(str(exc))
    bar.close()
    from submissions.verify import SUMMARY_FILE

    print((Path(args.out) / SUMMARY_FILE).read_text(encoding="utf-8"), end="")
    print(f"report: {Path(args.out) / 'report.json'}", file=sys.stderr)
    return {"verified": 0, "failed": 1, "inconclusive": 1, "error": 3}[report.verdict.value]


# -- worker ----------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    import signal
    import socket

    from submissions.client import Client, ClientError
    from submissions.worker import NodeCannotSeal, Worker

    token_file = os.environ.get(TOKEN_FILE_ENV)
    try:
        token = _token(args)
    except (OSError, ValueError) as exc:
        return _err(str(exc))
    if not token:
        return _err(f"--token (or ${TOKEN_FILE_ENV}, or ${TOKEN_ENV}) is required")
    tracks = [t for t in args.tracks.split(",") if t] if args.tracks else None
    try:
        client = Client(args.server, token)
        worker = Worker(
            client,
            worker_id=args.worker_id or socket.gethostname()[:100],
            work_dir=Path(args.work_dir),
            poll_interval_s=args.poll_interval_s,
            tracks=tracks,
            run_timeout_s=args.run_timeout_s,
            smoke_steps=args.smoke_steps,
            allow_local_git=args.allow_local_git,
            hidden=[Path(token_file)] if token_file else None,  # masked in every sandbox that could see it
            keep_job_dirs=args.keep_job_dirs,
            threads=args.threads,
        )
    except ValueError as exc:
        return _err(str(exc))
    why = worker.check_node()
    if why is not None:
        client.close()
        return _err(why, code=4)

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    with client:
        if args.once:
            try:
                state = worker.run_once()
            except (ClientError, NodeCannotSeal) as exc:
                return _err(str(exc))
            if state is None:
                print("no job", file=sys.stderr)
                return 0
            print(json.dumps(state.model_dump(mode="json")))
            return 0
        worker.run_forever()
    return 0


# -- parsers ---------------------------------------------------------------------------------


def _sandbox_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-local-git",
        action="store_true",
        help="also fetch forks from file:// and private/loopback hosts (tests, offline use; off by default)",
    )


def sandbox_check(gpu: bool) -> Any:
    """`speedrun doctor`'s sandbox check: the probe launched exactly as a job's steps are."""
    from submissions.cgroups import delegated
    from submissions.sandbox import bwrap_path, probe, sandbox_identity
    from trainer.doctor.checks import FAIL, OK, SKIP, Check

    if bwrap_path() is None:
        return Check("sandbox", SKIP, "bubblewrap (bwrap) is not installed: this node cannot be a worker")
    seen, problem = probe(gpu=gpu)
    figures = {"seen": seen, "identity": sandbox_identity().describe(), "cgroup_v2": delegated().why_not or "delegated"}
    if problem is not None:
        return Check("sandbox", FAIL, f"cannot seal: {problem}"[:500], figures)
    return Check("sandbox", OK, f"sealed steps start here ({figures['identity']})", figures)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    register_doctor(sub, extra=[("sandbox", sandbox_check)])
    p = sub.add_parser(
        "submit",
        help="Submit a run config to a leaderboard server",
        description="Validate a submission locally, upload it, and print the entry URL.",
    )
    p.add_argument("submission", nargs="?", help="a Submission JSON file (see submissions/json_schema)")
    p.add_argument(
        "--from-run",
        action="append",
        metavar="DIR",
        help="build the submission from a finished run directory (repeat for more seeds)",
    )
    p.add_argument("--track", help="track slug, e.g. cpu-smoke (with --from-run)")
    p.add_argument("--title", help="entry title (with --from-run)")
    p.add_argument("--contributor", action="append", help="a contributor (repeat; with --from-run)")
    p.add_argument("--description", help="entry description (with --from-run)")
    p.add_argument(
        "--trainer",
        help="trainer source: reference@<version or commit> (default: the run's trainer version), or a fork "
        "as https://host/owner/repo@<40-hex commit>",
    )
    p.add_argument("--idempotency-key", help="default: derived from the run results, title and track")
    p.add_argument("--server", help="the leaderboard URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--token", help=f"API token (default ${TOKEN_ENV})")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and print the submission, and with --server run the site's checks; store nothing",
    )
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser(
        "verify",
        help="Reproduce a run config K times and decide with statistics",
        description="Run a config K times with distinct seeds through `speedrun train`, then decide the "
        "track's verdict (mean CORE > threshold by a one-sided t-test). Writes report.json and summary.txt. "
        "Exit code: 0 verified, 1 failed or inconclusive, 3 error.",
    )
    p.add_argument("input", nargs="?", help="run config, submission or run result JSON, or a run directory")
    p.add_argument("--runs", type=int, help="K, runs with distinct seeds (default: the track's min_runs)")
    p.add_argument("--out", help="output directory (runs, report.json, summary.txt)")
    p.add_argument("--track", help="track slug (default: the submission's, or cpu-smoke for a CPU config)")
    p.add_argument("--track-file", help="a TrackRules JSON to decide against instead of a built-in track")
    p.add_argument("--seeds", help="comma-separated distinct seeds (default: unpredictable ones)")
    p.add_argument("--run-timeout-s", type=float, help="time cap of each run in seconds (default: the track's cap)")
    p.add_argument("--smoke-steps", type=int, help="first a smoke run of this many steps (CORE on 11 per task)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--export-schema", metavar="DIR", help="write the contract's JSON Schema files to DIR and exit")
    _sandbox_flags(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "worker",
        help="Lease verification jobs from a server and run them",
        description="Lease jobs over HTTP, run `speedrun verify` for each, heartbeat, upload artifacts and "
        "complete the job. One job at a time per work dir (a file lock).",
    )
    p.add_argument("--server", required=True, help="the leaderboard URL")
    p.add_argument("--token", help=f"worker API token (default ${TOKEN_ENV}; the env var hides it from ps)")
    p.add_argument("--once", action="store_true", help="lease and run at most one job, then exit")
    p.add_argument("--work-dir", default=".speedrun/worker", help="where jobs run (default .speedrun/worker)")
    p.add_argument("--worker-id", help="name shown on the site (default: host name)")
    p.add_argument("--tracks", help="comma-separated track slugs to lease (default: any)")
    p.add_argument("--poll-interval-s", type=float, default=15.0, help="wait between polls of an empty queue")
    p.add_argument(
        "--run-timeout-s", type=float, help="time cap of each training run in seconds (default: the track's cap)"
    )
    p.add_argument("--smoke-steps", type=int, help="before each job's runs, a smoke run of this many steps")
    p.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="CPU threads of each CPU run (default: the CPUs free when it starts); several workers "
        "on one machine each take their share",
    )
    p.add_argument(
        "--keep-job-dirs",
        type=int,
        default=3,
        metavar="N",
        help="job directories kept after their upload, newest first (default 3; older ones are deleted)",
    )
    _sandbox_flags(p)
    p.set_defaults(func=cmd_worker)
