"""The ``omnihub`` command: run the hub, migrate the database, create managers and tokens."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import getpass
import importlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from crm_core.enums import Role
from hub import logs
from hub.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from crm_core.db import T, Work
    from hub.roles import ProcessRole

# Each command imports what it runs, inside its function: `omnihub --help` (and a command's
# `--help`) must not pay for the hub's web app, the ORM, alembic or a channel's library.
# tests/unit/test_lazy_imports.py keeps them out; bench/startup.py measures the start.
_MIGRATE = "crm_core.migrate"
_APP = "hub.app"

log = logging.getLogger("omnihub")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # `--help` and usage errors end here, before any heavy import
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"omnihub: {exc}", file=sys.stderr)
        return 2
    # The modules the command runs are imported before logging is configured, as when they
    # were imported with this one: alembic logs "setup plugin ..." (INFO) as it loads.
    for module in args.preload:
        importlib.import_module(module)
    logs.configure(settings.log_level)
    try:
        return int(args.command(args, settings))
    except (SettingsError, ValueError) as exc:
        print(f"omnihub: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnihub", description=__doc__)
    parser.add_argument("--config", help="a TOML settings file (or OMNIHUB_CONFIG)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="serve the whole hub (API, outbox relay, channels) from one process"
    )
    run.add_argument("--host", help="address to listen on (default from settings: 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default from settings: 8080)")
    run.set_defaults(command=_run, preload=(_MIGRATE, _APP))

    web_cmd = commands.add_parser(
        "web", help="scaled mode: serve the API, UI and WebSocket (PostgreSQL + Redis)"
    )
    web_cmd.add_argument("--host", help="address to listen on (default from settings: 127.0.0.1)")
    web_cmd.add_argument("--port", type=int, help="port to listen on (default from settings: 8080)")
    web_cmd.set_defaults(command=_web, preload=(_APP,))

    worker = commands.add_parser(
        "worker",
        help="scaled mode: outbox relay, timers, channel loops (PostgreSQL + Redis)",
    )
    worker.add_argument("--host", default="127.0.0.1", help="address of /healthz (127.0.0.1)")
    worker.add_argument(
        "--port", type=int, default=8081, help="port of /healthz (default 8081; 0: any free one)"
    )
    worker.set_defaults(command=_worker, preload=(_APP,))

    migrate_cmd = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate_cmd.set_defaults(command=_migrate, preload=(_MIGRATE,))

    manager = commands.add_parser("create-manager", help="add a manager, head of sales or admin")
    manager.add_argument("--email", required=True)
    manager.add_argument("--name", required=True)
    manager.add_argument("--role", choices=[r.value for r in Role], default=Role.MANAGER.value)
    manager.add_argument("--team", help="team name (created if new)")
    manager.add_argument("--capacity", type=int, default=20, help="max open conversations")
    manager.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the password from this environment variable instead of prompting",
    )
    manager.add_argument("--no-password", action="store_true", help="no login (API use only)")
    manager.set_defaults(command=_create_manager, preload=(_MIGRATE,))

    token = commands.add_parser("create-token", help="issue an API token (shown once)")
    token.add_argument("--name", required=True, help="what the token is for")
    token.add_argument(
        "--manager-email",
        help="the token speaks for this manager, with their role and visibility "
        "(default: an integration token that sees the whole CRM)",
    )
    token.set_defaults(command=_create_token, preload=(_MIGRATE,))
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from crm_core import migrate
    from hub.roles import ProcessRole

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = dataclasses.replace(settings, **overrides)
    with single_process_lock(settings):
        if settings.migrate_on_start:
            migrate.upgrade(settings.database_url)
        return _serve(settings, ProcessRole.ALL)


def _web(args: argparse.Namespace, settings: Settings) -> int:
    """Scaled mode's web half; the schema is brought up to date by ``omnihub migrate``."""
    from hub.roles import ProcessRole

    _check_scaled("web", settings)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    return _serve(dataclasses.replace(settings, **overrides), ProcessRole.WEB)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    """Scaled mode's background half, with a ``/healthz`` for a supervisor."""
    from hub.roles import ProcessRole

    _check_scaled("worker", settings)
    return _serve(dataclasses.replace(settings, host=args.host, port=args.port), ProcessRole.WORKER)


def _check_scaled(command: str, settings: Settings) -> None:
    if settings.is_sqlite or not settings.redis_url:
        raise SettingsError(
            f"`omnihub {command}` needs PostgreSQL (database_url) and Redis (redis_url); "
            "with SQLite use `omnihub run`, one process"
        )


def _serve(settings: Settings, role: ProcessRole) -> int:
    from aiohttp import web

    from hub.app import create_app

    app = create_app(settings, role=role)
    what = "listening on" if role.serves_api else "worker: health at"
    log.info("omnihub %s http://%s:%d (%s)", what, settings.host, settings.port, role.value)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        print=None,
        shutdown_timeout=10,
    )
    log.info("omnihub stopped")
    return 0


@contextlib.contextmanager
def single_process_lock(settings: Settings) -> Iterator[None]:
    """SQLite serves one hub process: hold ``<file>.lock`` (``flock``) while the hub runs.
    Admin commands (create-manager, create-token) do not take it and work beside a hub."""
    from sqlalchemy.engine import make_url

    database = make_url(settings.database_url).database if settings.is_sqlite else None
    if not database or database == ":memory:":
        yield
        return
    path = f"{os.path.abspath(database)}.lock"
    handle = open(path, "a+b")  # noqa: SIM115 (held open until the hub stops)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SettingsError(
                f"another hub is running on {database} (it holds {path}); SQLite serves one "
                "process: for several, use PostgreSQL and Redis (omnihub web / worker)"
            ) from None
        yield
    finally:
        handle.close()  # closing the file releases the lock


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from crm_core import migrate

    migrate.upgrade(settings.database_url)
    log.info("database schema is up to date")
    return 0


def _create_manager(args: argparse.Namespace, settings: Settings) -> int:
    from crm_core.clock import SystemClock
    from crm_core.journal import Journal
    from crm_core.people import PASSWORD_MIN_LENGTH, create_manager

    password: str | None = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise SettingsError(f"the environment variable {args.password_env} is empty")
    elif not args.no_password:
        password = getpass.getpass("Password: ")
    if password is not None and len(password) < PASSWORD_MIN_LENGTH:
        raise SettingsError(f"the password needs at least {PASSWORD_MIN_LENGTH} characters")
    role = Role(args.role)

    def work(session: Session) -> int:
        journal = Journal("cli", SystemClock().now())
        manager = create_manager(
            session,
            journal,
            email=args.email,
            name=args.name,
            role=role,
            team=args.team,
            capacity=args.capacity,
            password=password,
        )
        journal.flush(session)
        return manager.id

    manager_id = _in_transaction(settings, work)
    print(f"manager {manager_id} created: {args.email} ({role.value})")
    return 0


def _create_token(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from crm_core.clock import SystemClock
    from crm_core.identities import normalize_email
    from crm_core.journal import Journal
    from crm_core.models import Manager
    from crm_core.people import create_api_token

    def work(session: Session) -> str:
        journal = Journal("cli", SystemClock().now())
        manager_id = None
        if args.manager_email:
            address = normalize_email(args.manager_email)
            manager_id = session.scalar(select(Manager.id).where(Manager.email == address))
            if manager_id is None:
                raise SettingsError(f"no manager with the email {address}")
        _token, plain = create_api_token(session, journal, args.name, manager_id)
        journal.flush(session)
        return plain

    print(_in_transaction(settings, work))
    return 0


def _in_transaction(settings: Settings, work: Work[T]) -> T:
    """Migrate if needed, then run ``work`` in one transaction of its own."""
    import asyncio

    from crm_core import migrate
    from crm_core.db import Database

    migrate.upgrade(settings.database_url)

    async def run() -> T:
        db = Database(settings.database_url)
        try:
            return await db.write(work)
        finally:
            await db.dispose()

    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
