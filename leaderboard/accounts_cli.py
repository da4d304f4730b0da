"""`speedrun admin` commands of accounts and the queue: disable/enable users, list/revoke tokens,
list/pause/resume workers. Each is audited (actor "cli") and takes effect on the next request."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Command = Callable[[argparse.Namespace], int]


def _cli_actor() -> Any:
    from leaderboard.users.models import Role, User

    return User(id=None, name="cli", role=Role.admin)  # unsaved: audited without an id


def _run(args: argparse.Namespace, action: Callable[[Any], Any]) -> int:
    from leaderboard.cli import _admin_session, _print_json

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


def register(
    user: argparse._SubParsersAction,  # type: ignore[type-arg]
    token: argparse._SubParsersAction,  # type: ignore[type-arg]
    groups: argparse._SubParsersAction,  # type: ignore[type-arg]
    db_options: Callable[[argparse.ArgumentParser], None],
    wrap: Callable[[Command], Command],
) -> None:
    """Add the commands to the `admin user`, `admin token` groups and a new `admin worker` group."""

    def add(group: Any, name: str, help_text: str, func: Command, *arguments: tuple[str, dict[str, Any]]) -> None:
        p = group.add_parser(name, help=help_text)
        for flag, options in arguments:
            p.add_argument(flag, **options)
        db_options(p)
        p.set_defaults(func=wrap(func))

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
