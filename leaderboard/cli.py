"""Command-line groups of this part: serve, demo, admin.

argparse only at import; fastapi/sqlalchemy/uvicorn are imported inside the command functions.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite file under the data dir)")
    p.add_argument("--home", default=None, help="data directory (default: $SPEEDRUN_HOME or the current directory)")


def _settings(args: argparse.Namespace, **extra: Any) -> Any:
    from pathlib import Path

    from leaderboard.settings import Settings

    values: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if getattr(args, "database_url", None):
        values["database_url"] = args.database_url
    if getattr(args, "home", None):
        values["home"] = Path(args.home).expanduser().resolve()
    return Settings(**values)


# ----------------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from leaderboard.app import create_app, open_database

    # --base-url wins, then SPEEDRUN_BASE_URL (read by Settings), then the address we listen on
    base_url = args.base_url or (None if os.environ.get("SPEEDRUN_BASE_URL") else f"http://{args.host}:{args.port}")
    try:
        settings = _settings(args, base_url=base_url)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    base_url = settings.base_url
    db = open_database(settings)  # migrations + seed once, before any worker process starts
    db.close()
    print(f"speedrun site on {base_url}  (database: {_safe_url(settings.resolved_database_url)})", file=sys.stderr)
    if args.workers > 1:
        os.environ["SPEEDRUN_DATABASE_URL"] = settings.resolved_database_url
        os.environ["SPEEDRUN_HOME"] = str(settings.home)
        os.environ["SPEEDRUN_BASE_URL"] = base_url
        uvicorn.run(
            "leaderboard.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=args.access_log,
        )
    else:
        uvicorn.run(
            create_app(settings), host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log
        )
    return 0


def _safe_url(url: str) -> str:
    """The URL without its password (never print credentials)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ----------------------------------------------------------------------------- admin


def _admin_session(args: argparse.Namespace) -> Any:
    from leaderboard.app import open_database
    from leaderboard.db import session_scope

    db = open_database(_settings(args))
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


def _cli_admin(user_cls: Any, role_cls: Any) -> Any:
    """The actor of an admin command run on the server itself: an unsaved admin, audited without an id."""
    return user_cls(id=None, name="cli", role=role_cls.admin)


def cmd_track_list(args: argparse.Namespace) -> int:
    from leaderboard.tracks.service import list_tracks

    with _admin_session(args) as session:
        _print_json([t.model_dump(mode="json") for t in list_tracks(session)])
    return 0


_TRACK_FIELDS = (
    "name", "description", "threshold", "gpus_per_node", "nodes", "min_runs", "alpha", "ranking",
    "require_sealed", "fork_review", "clock_tolerance", "max_verifications", "weekly_gpu_runs", "core_examples",
    "max_job_seconds",
)  # fmt: skip


def cmd_track_set(args: argparse.Namespace) -> int:
    from leaderboard.tracks.schemas import TrackUpdate
    from leaderboard.tracks.service import update_track
    from leaderboard.users.models import Role, User

    changes: dict[str, Any] = {f: getattr(args, f) for f in _TRACK_FIELDS if getattr(args, f) is not None}
    if args.hardware_classes:
        changes["hardware_classes"] = [h.strip() for h in args.hardware_classes.split(",") if h.strip()]
    if not changes:
        print("error: give at least one field to change (see --help)", file=sys.stderr)
        return 2
    with _admin_session(args) as session:
        track = update_track(session, _cli_admin(User, Role), args.slug, TrackUpdate(**changes))
    _print_json(track.model_dump(mode="json"))
    return 0


def cmd_entry_approve(args: argparse.Namespace) -> int:
    from leaderboard.entries.service import approve
    from leaderboard.users.models import Role, User

    with _admin_session(args) as session:
        entry = approve(session, _cli_admin(User, Role), args.entry_id, args.note)
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
    from leaderboard.users.models import Role, User

    try:
        effective = date.fromisoformat(args.effective_date) if args.effective_date else date.today()
    except ValueError:
        print(f"error: --effective-date: expected YYYY-MM-DD, got {args.effective_date!r}", file=sys.stderr)
        return 2
    with _admin_session(args) as session:
        price = add_price(
            session,
            _cli_admin(User, Role),
            PriceCreate(sku=args.sku, usd_per_gpu_hour=args.usd_per_gpu_hour, effective_date=effective, note=args.note),
        )
    _print_json(price.model_dump(mode="json"))
    return 0


def _admin_errors(func: Any) -> Any:
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


# ----------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from leaderboard.demo import run_demo

    return run_demo(
        home=args.home,
        port=args.port,
        keep_serving=not args.no_serve,
        run_timeout_s=args.run_timeout,
        num_iterations=args.num_iterations,
    )


# ----------------------------------------------------------------------------- parsers


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from leaderboard import accounts_cli

    serve = sub.add_parser("serve", help="Run the leaderboard site (migrations applied on start)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--base-url", default=None, help="public URL of the site (default http://HOST:PORT)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    _db_options(serve)
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser(
        "demo",
        help="Start the site, train, submit and verify a CPU run end to end",
        description="Start the site on its embedded SQLite database, train the cpu_smoke recipe, submit it, "
        "verify it with a local worker, and print the URL of the verified entry.",
    )
    demo.add_argument("--home", default=None, help="data directory (default: ./speedrun-demo)")
    demo.add_argument("--port", type=int, default=None, help="port of the site (default: a free one)")
    demo.add_argument("--no-serve", action="store_true", help="stop the site after printing the URL")
    demo.add_argument("--run-timeout", type=float, default=None, help="seconds allowed per verification run")
    demo.add_argument(
        "--num-iterations",
        type=int,
        default=None,
        help="train fewer steps than the recipe (a quick look; a short run may not clear the CPU track's bar)",
    )
    demo.set_defaults(func=cmd_demo)

    admin = sub.add_parser("admin", help="Manage users, tokens, tracks and prices")
    groups = admin.add_subparsers(dest="admin_group", metavar="GROUP", required=True)

    user = groups.add_parser("user", help="users and their first token").add_subparsers(
        dest="admin_cmd", metavar="CMD", required=True
    )
    p = user.add_parser("create", help="create a user and print its API token once")
    p.add_argument("name")
    p.add_argument("--role", choices=["submitter", "worker", "admin"], default="submitter")
    p.add_argument("--label", default="", help="a note on the token")
    _db_options(p)
    p.set_defaults(func=_admin_errors(cmd_user_create))
    p = user.add_parser("list", help="list users")
    _db_options(p)
    p.set_defaults(func=_admin_errors(cmd_user_list))

    token = groups.add_parser("token", help="API tokens").add_subparsers(dest="admin_cmd", metavar="CMD", required=True)
    p = token.add_parser("issue", help="issue another token for a user (printed once)")
    p.add_argument("name")
    p.add_argument("--label", default="")
    _db_options(p)
    p.set_defaults(func=_admin_errors(cmd_token_issue))
    accounts_cli.register(user, token, groups, _db_options, _admin_errors)

    track = groups.add_parser("track", help="tracks").add_subparsers(dest="admin_cmd", metavar="CMD", required=True)
    p = track.add_parser("list", help="list tracks")
    _db_options(p)
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
    _db_options(p)
    p.set_defaults(func=_admin_errors(cmd_track_set))

    entry = groups.add_parser("entry", help="entries").add_subparsers(dest="admin_cmd", metavar="CMD", required=True)
    p = entry.add_parser("approve", help="approve a verified fork's code: it is ranked (audited)")
    p.add_argument("entry_id", type=int)
    p.add_argument("--note", default="", help="what was reviewed")
    _db_options(p)
    p.set_defaults(func=_admin_errors(cmd_entry_approve))

    price = groups.add_parser("price", help="reference prices").add_subparsers(
        dest="admin_cmd", metavar="CMD", required=True
    )
    p = price.add_parser("list", help="list the dated price table")
    _db_options(p)
    p.set_defaults(func=_admin_errors(cmd_price_list))
    p = price.add_parser("add", help="add a dated price row (audited)")
    p.add_argument("sku")
    p.add_argument("usd_per_gpu_hour", type=float)
    p.add_argument("--effective-date", default=None, help="YYYY-MM-DD (default: today)")
    p.add_argument("--note", default="")
    _db_options(p)
    p.set_defaults(func=_admin_errors(cmd_price_add))
