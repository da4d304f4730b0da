"""Checks of the deployment configuration without a container engine: every ``speedrun ...`` command the
images, compose and ``docs/deploy.md`` run parses with the real CLI, every ``SPEEDRUN_*`` variable is a real
setting, compose wires the services and no secret is written into a file; the site image's command is run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from deploy_files import (
    COMPOSE,
    DEV_DEFAULT_MARK,
    DOCKER,
    INTERPOLATION,
    ROOT,
    SECRET_NAME,
    SOURCE_DIRS,
    compose,
    deploy_texts,
    doc_invocations,
    entropy_bits,
    env_example,
    health_probe_path,
    parse_speedrun,
    service,
    trainer,
)
from dockerfile_parser import (
    command_words,
)

# --- commands exist in the real CLI --------------------------------------------------------------


def test_image_commands_parse_with_the_real_cli() -> None:
    df = service()
    argv = command_words(df.effective(df.final, "ENTRYPOINT")) + command_words(df.effective(df.final, "CMD"))  # type: ignore[arg-type]
    assert argv[0] == "speedrun"
    assert parse_speedrun(argv[1:]) is None, f"site image command {argv}: {parse_speedrun(argv[1:])}"
    tr = trainer()
    for stage in ("trainer", "trainer-fa3"):
        argv = command_words(tr.effective(tr.stage(stage), "ENTRYPOINT")) + command_words(
            tr.effective(tr.stage(stage), "CMD")  # type: ignore[arg-type]
        )
        assert parse_speedrun(argv[1:]) is None, f"trainer image command {argv}: {parse_speedrun(argv[1:])}"


def test_compose_commands_parse_with_the_real_cli() -> None:
    images = {"docker/service.Dockerfile": service(), "docker/trainer.Dockerfile": trainer()}
    checked = 0
    for name, svc in compose()["services"].items():
        if "build" not in svc:
            continue
        df = images[svc["build"]["dockerfile"]]
        final = df.stage(svc["build"]["target"]) if "target" in svc["build"] else df.final
        entry = svc.get("entrypoint") or command_words(df.effective(final, "ENTRYPOINT"))  # type: ignore[arg-type]
        command = svc.get("command") or command_words(df.effective(final, "CMD"))  # type: ignore[arg-type]
        argv = [*entry, *command]
        assert argv[0] == "speedrun", f"service {name} runs {argv[0]}"
        problem = parse_speedrun(argv[1:])
        assert problem is None, f"service {name}: `{shlex.join(argv)}` is rejected by the CLI: {problem}"
        checked += 1
    assert checked == 2


def test_docs_commands_parse_with_the_real_cli() -> None:
    found = doc_invocations()
    kinds = [kind for _, kind, _ in found]
    assert kinds.count("torchrun") >= 2, "docs/deploy.md should show single-node and multi-node torchrun"
    groups = {argv[0] for _, kind, argv in found if kind == "speedrun" and argv}
    assert {"serve", "worker", "train", "admin", "data"} <= groups, groups
    problems = [
        f"`{command}`: {parse_speedrun(argv)}"
        for command, kind, argv in found
        if kind == "speedrun" and parse_speedrun(argv) is not None
    ]
    assert not problems, "docs/deploy.md runs commands the CLI rejects:\n" + "\n".join(problems)


def test_docs_multi_node_launch_uses_c10d_rendezvous() -> None:
    multi = [argv for _, kind, argv in doc_invocations() if kind == "torchrun" and "--standalone" not in argv]
    assert multi, "no multi-node torchrun command in docs/deploy.md"
    for argv in multi:
        text = " ".join(argv)
        assert "--rdzv-backend c10d" in text or "--rdzv-backend=c10d" in text, text
        assert "--rdzv-endpoint" in text and "--nnodes" in text, text


# --- configuration: settings names, compose wiring -----------------------------------------------


def test_speedrun_env_vars_exist_in_settings_or_code() -> None:
    from leaderboard.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    assert prefix == "SPEEDRUN_"
    fields = {prefix + name.upper() for name in Settings.model_fields}
    source = "\n".join(p.read_text(encoding="utf-8") for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py"))
    unknown: dict[str, list[str]] = {}
    for path, text in deploy_texts().items():
        for name in set(re.findall(r"\bSPEEDRUN_[A-Z0-9_]+", text)):
            if name not in fields and f'"{name}"' not in source:
                unknown.setdefault(name, []).append(path)
    assert not unknown, f"variables that neither leaderboard.settings.Settings nor the code reads: {unknown}"


def test_compose_topology() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "site", "worker"}
    db, site, worker = services["db"], services["site"], services["worker"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"]), "PostgreSQL data needs a volume"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert site["depends_on"]["db"]["condition"] == "service_healthy"
    assert site["environment"]["SPEEDRUN_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db:5432/" in site["environment"]["SPEEDRUN_DATABASE_URL"]
    assert any(v.endswith(":/var/lib/speedrun") for v in site["volumes"]), "artifacts need a volume"
    assert worker["profiles"] == ["gpu"], "the worker must stay off unless --profile gpu"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    command = worker["command"]
    server = command[command.index("--server") + 1]
    assert server == "http://site:8000", "the worker must reach the site by its compose service name"
    for svc in (site, worker):
        assert (ROOT / svc["build"]["dockerfile"]).exists()
        assert (COMPOSE.parent / svc["build"]["context"]).resolve() == ROOT
    declared = set(compose()["volumes"])
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert used <= declared, f"undeclared volumes {used - declared}"


def test_site_settings_in_compose_validate() -> None:
    from leaderboard.settings import Settings

    env = env_example()
    values = {
        key[len("SPEEDRUN_") :].lower(): INTERPOLATION.sub(
            lambda m: env.get(re.split(r"[:?+-]", m.group(0)[2:-1], maxsplit=1)[0], m.group(0)), str(value)
        )
        for key, value in compose()["services"]["site"]["environment"].items()
    }
    settings = Settings(**values)  # raises ValueError naming the field if compose sets a bad value
    assert settings.resolved_database_url.startswith("postgresql+psycopg://speedrun:")


# --- secrets -------------------------------------------------------------------------------------


def _interpolated_names(text: str) -> set[str]:
    return {re.split(r"[:?+-]", m[2:-1], maxsplit=1)[0] for m in INTERPOLATION.findall(text)}


def test_compose_secrets_come_from_env_file() -> None:
    for name, svc in compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            text = str(value)
            if SECRET_NAME.search(key):
                assert INTERPOLATION.fullmatch(text), f"service {name}: {key} holds a literal, not ${{...}}"
            for userinfo in re.findall(r"://[^:/@\s]+:([^@\s]+)@", text):
                assert INTERPOLATION.fullmatch(userinfo), f"service {name}: {key} has a literal password in its URL"
        command = svc.get("command") or []
        for flag in ("--token", "--password", "--secret"):
            if flag in command:
                value = command[command.index(flag) + 1]
                assert INTERPOLATION.fullmatch(value), f"service {name}: {flag} is a literal"


def test_env_example_documents_every_compose_variable_with_dev_defaults() -> None:
    env = env_example()
    used = _interpolated_names(COMPOSE.read_text(encoding="utf-8"))
    assert used <= set(env), f"compose uses variables that .env.example does not document: {used - set(env)}"
    assert set(env) <= used, f".env.example has variables compose never uses: {set(env) - used}"
    for name, value in env.items():
        if SECRET_NAME.search(name):
            assert value.startswith(DEV_DEFAULT_MARK), f"{name} in .env.example must be a marked dev default"
    assert ".env" in (DOCKER / ".gitignore").read_text().split(), "docker/.env (real secrets) must be git-ignored"


def test_no_secret_literals_in_deploy_files() -> None:
    vendor_token = re.compile(
        r"\b(?:sk-[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})"
    )
    random_run = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
    for path, text in deploy_texts().items():
        found = vendor_token.search(text)
        assert found is None, f"{path}: a literal API token: {found.group(0)[:8]}..."
        for m in random_run.finditer(text):
            run = m.group(0)
            if "/" in run.strip("/"):
                continue  # a path, not a key
            classes = sum(bool(re.search(c, run)) for c in (r"[a-z]", r"[A-Z]", r"\d"))
            if re.fullmatch(r"[0-9a-f]{32,}", run) or (classes == 3 and entropy_bits(run) > 4.2):
                assert text[max(0, m.start() - 7) : m.start()] == "sha256:", (
                    f"{path}: a long random-looking literal (a key or token?): {run[:10]}..."
                )
        for line in text.splitlines():
            for key, value in re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", line):
                if not SECRET_NAME.search(key) or path.endswith(".env.example"):
                    continue
                ok = value.startswith(("$", "<", DEV_DEFAULT_MARK, '"$', "'$")) or value in {'""', "''"}
                assert ok, f"{path}: {key} is given a literal value: {line.strip()}"
    for df in (service(), trainer()):
        for stage in df.stages:
            for instruction in stage.all("ENV") + stage.all("ARG"):
                for name in re.findall(r"\b([A-Z][A-Z0-9_]*)=", instruction.value):
                    assert not SECRET_NAME.search(name), (
                        f"{df.path.name}:{instruction.line}: {name} baked into the image"
                    )


# --- the site image's command, run for real (SQLite instead of PostgreSQL, no container) ----------


@pytest.mark.slow
def test_site_command_with_compose_environment_serves_health(tmp_path: Path, free_port: int) -> None:
    """The site's command as compose runs it, with the environment compose gives it, answers the health probe."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    df = service()
    site = compose()["services"]["site"]
    env_file = env_example()

    def interpolate(value: object) -> str:
        return INTERPOLATION.sub(lambda m: env_file.get(_interpolated_names(m.group(0)).pop(), ""), str(value))

    entry = site.get("entrypoint") or command_words(df.effective(df.final, "ENTRYPOINT"))  # type: ignore[arg-type]
    command = site.get("command") or command_words(df.effective(df.final, "CMD"))  # type: ignore[arg-type]
    argv = [interpolate(word) for word in [*entry, *command]]
    argv[argv.index("--port") + 1] = str(free_port)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    site_env = {key: interpolate(value) for key, value in site["environment"].items()}
    site_env["SPEEDRUN_DATABASE_URL"] = ""  # SQLite under SPEEDRUN_HOME: no PostgreSQL needed here
    site_env["SPEEDRUN_HOME"] = str(tmp_path)
    site_env["SPEEDRUN_ARTIFACTS_DIR"] = str(tmp_path / "artifacts")
    base_url = env_file["SITE_BASE_URL"]  # what compose makes the public URL, not http://127.0.0.1:<port>
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPEEDRUN_")} | site_env
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "speedrun", *argv[1:]], env=env, stdout=out, stderr=out)
        try:
            status = None
            for _ in range(300):  # up to ~60 s on a loaded machine; no timing is asserted
                if proc.poll() is not None:
                    break
                try:
                    reply = httpx.get(f"http://127.0.0.1:{free_port}{health_probe_path()}", timeout=2)
                    status = reply.status_code
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert status == 200, f"{health_probe_path()} answered {status}; serve output:\n{text[-3000:]}"
    assert base_url in text, f"serve does not use the public URL {base_url} compose gives it:\n{text[-2000:]}"
