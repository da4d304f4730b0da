"""`speedrun admin`: users, tokens, workers, tracks, entries and prices, run on the server itself.

Every change is audited with the actor "cli" and takes effect on the next request. argparse only at
import; fastapi/sqlalchemy are imported inside the command functions. ``db_options`` and
``settings_from_args`` are shared with `speedrun serve` (``speedrun.commands``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

Command = Callable[[argparse.Namespace], int]


def db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite file under the data dir)")
    p.add_argument("--home", default=None, help="data directory (default: $SPEEDRUN_HOME or the current directory)")


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Any:
    """``Settings`` from ``--database-url``, ``--home`` and ``extra`` (None values left to the defaults)."""
    from pathlib import Path

    from leaderboard.settings import Settings

    values: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if getattr(args, "database_url", None):
        values["database_url"] = args.database_url
    if getattr(args, "home", None):
        values["home"] = Path(args.home).expanduser().resolve()
    return Settings(**values)


# ----------------------------------------------------------------------------- admin


def _admin_session(args: argparse.Namespace) -> Any:
    from leaderboard.app import open_database
    from leaderboard.db import session_scope

    db = open_database(settings_from_args(args))
    return session_scope(db.sessionmaker)


def _print_json(obj: Any) -> None:
    import json

    print(json.dumps(obj, indent=2, default=str))


def cmd_user_create(args: argparse.Namespace) -> int:
    from leaderboard.users.models import Role
    from leaderboard.users.schemas import UserCreate
    from leaderboard.users.service import create_user

    with _admin_session(args) as session:
        issued = create_user(session, UserCreate(name=args.name, role=Role(args.role), token_label=args.label))
    print(f"created user {issued.user.name} (id {issued.user.id}, role {issued.user.role.value})", file=sys.stderr)
    print("API token (shown once, stored only as a digest):", file=sys.stderr)
    print(issued.token)
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from leaderboard.users.service import list_users

    with _admin_session(args) as session:
        _print_json([u.model_dump(mode="json") for u in list_users(session)])
    return 0


def cmd_token_issue(args: argparse.Namespace) -> int:
    from leaderboard.users.service import issue_token_for

    with _admin_session(args) as session:
        issued = issue_token_for(session, args.name, label=args.label)
    print(f"new token for {issued.user.name} (shown once):", file=sys.stderr)
    print(issued.token)
    return 0


def _cli_actor() -> Any:
    """The actor of an admin command run on the server itself: an unsaved admin, audited without an id."""
    from leaderboard.users.models import Role, User

    return User(id=None, name="cli", role=Role.admin)


def _run(args: argparse.Namespace, action: Callable[[Any], Any]) -> int:
    """Run ``action(session)`` in one transaction and print its result (a schema or a list of them)."""
    with _admin_session(args) as session:
        result = action(session)
    if isinstance(result, list):
        _print_json([r.model_dump(mode="json") for r in result])
    else:
        _print_json(result.model_dump(mode="json"))
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    from leaderboard.users.service import set_disabled

    return _run(args, lambda s: set_disabled(s, args.name, True, actor=_cli_actor(), reason=args.reason))


def cmd_user_enable(args: argparse.Namespace) -> int:
    from leaderboard.users.service import set_disabled

    return _run(args, lambda s: set_disabled(s, args.name, False, actor=_cli_actor(), reason=args.reason))


def cmd_token_list(args: argparse.Namespace) -> int:
    from leaderboard.users.service import list_tokens

    return _run(args, lambda s: list_tokens(s, args.name))


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from leaderboard.users.service import revoke_token

    return _run(args, lambda s: revoke_token(s, args.token_id, actor=_cli_actor(), reason=args.reason))


def cmd_worker_list(args: argparse.Namespace) -> int:
    from leaderboard.jobs.workers import list_workers

    return _run(args, list_workers)


def cmd_worker_pause(args: argparse.Namespace) -> int:
    from leaderboard.jobs.workers import set_paused

    return _run(args, lambda s: set_paused(s, args.name, True, actor=_cli_actor(), reason=args.reason))


def cmd_worker_resume(args: argparse.Namespace) -> int:
    from leaderboard.jobs.workers import set_paused

    return _run(args, lambda s: set_paused(s, args.name, False, actor=_cli_actor(), reason=args.reason))


def cmd_track_list(args: argparse.Namespace) -> int:
    from leaderboard.tracks.service import list_tracks

    with _admin_session(args) as session:
        _print_json([t.model_dump(mode="json") for t in list_tracks(session)])
    return 0


_TRACK_FIELDS = (
    "name", "description", "threshold", "gpus_per_node", "nodes", "min_runs", "alpha", "ranking",
    "require_sealed", "fork_review", "clock_tolerance", "max_verifications", "weekly_gpu_runs", "core_examples",
    "max_job_seconds", "min_worker_accounts",
)  # fmt: skip


def cmd_track_set(args: argparse.Namespace) -> int:
    from leaderboard.entries.actions import edit_track
    from leaderboard.tracks.schemas import TrackUpdate

    changes: dict[str, Any] = {f: getattr(args, f) for f in _TRACK_FIELDS if getattr(args, f) is not None}
    if args.hardware_classes:
        changes["hardware_classes"] = [h.strip() for h in args.hardware_classes.split(",") if h.strip()]
    if not changes:
        print("error: give at least one field to change (see --help)", file=sys.stderr)
        return 2
    with _admin_session(args) as session:
        track = edit_track(session, _cli_actor(), args.slug, TrackUpdate(**changes))
    _print_json(track.model_dump(mode="json"))
    return 0


def cmd_entry_approve(args: argparse.Namespace) -> int:
    from leaderboard.entries.actions import approve

    with _admin_session(args) as session:
        entry = approve(session, _cli_actor(), args.entry_id, args.note)
    _print_json(entry.model_dump(mode="json"))
    return 0


def cmd_price_list(args: argparse.Namespace) -> int:
    from leaderboard.tracks.service import list_prices

    with _admin_session(args) as session:
        _print_json([p.model_dump(mode="json") for p in list_prices(session)])
    return 0


def cmd_price_add(args: argparse.Namespace) -> int:
    from datetime import date

    from leaderboard.tracks.schemas import PriceCreate
    from leaderboard.tracks.service import add_price

    try:
        effective = date.fromisoformat(args.effective_date) if args.effective_date else date.today()
    except ValueError:
        print(f"error: --effective-date: expected YYYY-MM-DD, got {args.effective_date!r}", file=sys.stderr)
        return 2
    with _admin_session(args) as session:
        price = add_price(
            session,
            _cli_actor(),
            PriceCreate(sku=args.sku, usd_per_gpu_hour=args.usd_per_gpu_hour, effective_date=effective, note=args.note),
        )
    _print_json(price.model_dump(mode="json"))
    return 0


def _admin_errors(func: Command) -> Command:
    """Run an admin command; a domain or validation error is a clear message and exit 2."""

    def run(args: argparse.Namespace) -> int:
        from pydantic import ValidationError

        from leaderboard.errors import DomainError

        try:
            return int(func(args))
        except DomainError as exc:
            print(f"error: {exc.detail}", file=sys.stderr)
            return 2
        except ValidationError as exc:
            msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
            print(f"error: {msgs}", file=sys.stderr)
            return 2

    return run


# ----------------------------------------------------------------------------- parsers


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    admin = sub.add_parser("admin", help="Manage users, tokens, tracks and prices")
    groups = admin.add_subparsers(dest="admin_group", metavar="GROUP", required=True)

    user = groups.add_parser("user", help="users and their first token").add_subparsers(
        dest="admin_cmd", metavar="CMD", required=True
    )
    p = user.add_parser("create", help="create a user and print its API token once")
    p.add_argument("name")
    p.add_argument("--role", choices=["submitter", "worker", "admin"], default="submitter")
    p.add_argument("--label", default="", help="a note on the token")
    db_options(p)
    p.set_defaults(func=_admin_errors(cmd_user_create))
    p = user.add_parser("list", help="list users")
    db_options(p)
    p.set_defaults(func=_admin_errors(cmd_user_list))

    token = groups.add_parser("token", help="API tokens").add_subparsers(dest="admin_cmd", metavar="CMD", required=True)
    p = token.add_parser("issue", help="issue another token for a user (printed once)")
    p.add_argument("name")
    p.add_argument("--label", default="")
    db_options(p)
    p.set_defaults(func=_admin_errors(cmd_token_issue))
    _register_accounts(user, token, groups)

    track = groups.add_parser("track", help="tracks").add_subparsers(dest="admin_cmd", metavar="CMD", required=True)
    p = track.add_parser("list", help="list tracks")
    db_options(p)
    p.set_defaults(func=_admin_errors(cmd_track_list))
    p = track.add_parser("set", help="change fields of a track (audited)")
    p.add_argument("slug")
    p.add_argument("--name")
    p.add_argument("--description")
    p.add_argument("--threshold", type=float)
    p.add_argument("--hardware-classes", help="comma-separated SKU classes, or any-nvidia")
    p.add_argument("--gpus-per-node", type=int)
    p.add_argument("--nodes", type=int)
    p.add_argument("--min-runs", type=int)
    p.add_argument("--alpha", type=float)
    p.add_argument("--ranking", choices=["time", "cost"])
    p.add_argument("--require-sealed", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--fork-review", choices=["required", "none"])
    p.add_argument("--clock-tolerance", type=float, help="flag v1 self-reported vs v2 clock beyond this fraction")
    p.add_argument("--max-verifications", type=int, help="counted verifications an owner may ask for")
    p.add_argument("--weekly-gpu-runs", type=int, help="GPU runs per user per 7 days")
    p.add_argument("--core-examples", type=int, help="examples a full CORE pass scores")
    p.add_argument("--max-job-seconds", type=int, help="longest lease of a verification job (60 .. 2592000 s)")
    p.add_argument(
        "--min-worker-accounts", type=int, help="distinct worker accounts whose runs one verification needs (1 .. 10)"
    )
    db_options(p)
    p.set_defaults(func=_admin_errors(cmd_track_set))

    entry = groups.add_parser("entry", help="entries").add_subparsers(dest="admin_cmd", metavar="CMD", required=True)
    p = entry.add_parser("approve", help="approve a verified fork's code: it is ranked (audited)")
    p.add_argument("entry_id", type=int)
    p.add_argument("--note", default="", help="what was reviewed")
    db_options(p)
    p.set_defaults(func=_admin_errors(cmd_entry_approve))

    price = groups.add_parser("price", help="reference prices").add_subparsers(
        dest="admin_cmd", metavar="CMD", required=True
    )
    p = price.add_parser("list", help="list the dated price table")
    db_options(p)
    p.set_defaults(func=_admin_errors(cmd_price_list))
    p = price.add_parser("add", help="add a dated price row (audited)")
    p.add_argument("sku")
    p.add_argument("usd_per_gpu_hour", type=float)
    p.add_argument("--effective-date", default=None, help="YYYY-MM-DD (default: today)")
    p.add_argument("--note", default="")
    db_options(p)
    p.set_defaults(func=_admin_errors(cmd_price_add))


def _register_accounts(
    user: argparse._SubParsersAction,  # type: ignore[type-arg]
    token: argparse._SubParsersAction,  # type: ignore[type-arg]
    groups: argparse._SubParsersAction,  # type: ignore[type-arg]
) -> None:
    """The account and queue commands: `admin user disable|enable`, `admin token list|revoke` and
    the `admin worker` group."""

    def add(group: Any, name: str, help_text: str, func: Command, *arguments: tuple[str, dict[str, Any]]) -> None:
        p = group.add_parser(name, help=help_text)
        for flag, options in arguments:
            p.add_argument(flag, **options)
        db_options(p)
        p.set_defaults(func=_admin_errors(func))

    name = ("name", {"help": "the user's name"})
    reason = ("--reason", {"default": "", "help": "why (kept in the audit log)"})
    add(
        user,
        "disable",
        "disable a user: all their tokens and web sessions stop at once",
        cmd_user_disable,
        name,
        reason,
    )
    add(user, "enable", "enable a disabled user again (revoked tokens stay revoked)", cmd_user_enable, name, reason)
    add(token, "list", "a user's tokens (prefix, label, revoked), never the tokens", cmd_token_list, name)
    token_id = ("token_id", {"type": int, "help": "the token's id (see `token list`)"})
    add(
        token,
        "revoke",
        "revoke a token (and its web sessions) from the next request on",
        cmd_token_revoke,
        token_id,
        reason,
    )
    worker = groups.add_parser("worker", help="worker accounts in the queue").add_subparsers(
        dest="admin_cmd", metavar="CMD", required=True
    )
    add(worker, "list", "worker accounts: abandoned leases, pause, active leases", cmd_worker_list)
    add(worker, "pause", "stop a worker account from leasing jobs", cmd_worker_pause, name, reason)
    add(worker, "resume", "let a paused worker account lease again", cmd_worker_resume, name, reason)
