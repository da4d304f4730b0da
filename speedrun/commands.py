"""The commands that run the assembled site: `speedrun serve` and `speedrun demo`.

argparse only at import; uvicorn, fastapi and the demo's worker are imported inside the command
functions. The database options are those of `speedrun admin` (``leaderboard.cli``).
"""

from __future__ import annotations

import argparse
import sys

from leaderboard.cli import db_options, settings_from_args


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from leaderboard.app import open_database
    from speedrun.site import create_app

    # --base-url wins, then SPEEDRUN_BASE_URL (read by Settings), then the address we listen on
    base_url = args.base_url or (None if os.environ.get("SPEEDRUN_BASE_URL") else f"http://{args.host}:{args.port}")
    try:
        settings = settings_from_args(args, base_url=base_url)
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
            "speedrun.site:create_app",
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


def cmd_demo(args: argparse.Namespace) -> int:
    from speedrun.demo import run_demo

    return run_demo(
        home=args.home,
        port=args.port,
        keep_serving=not args.no_serve,
        run_timeout_s=args.run_timeout,
        num_iterations=args.num_iterations,
    )


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser("serve", help="Run the leaderboard site (migrations applied on start)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--base-url", default=None, help="public URL of the site (default http://HOST:PORT)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    db_options(serve)
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
