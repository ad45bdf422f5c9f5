"""The ``omnihub`` command: run the hub, migrate the database, create managers and tokens."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import logging
import os
import sys
from collections.abc import Sequence

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core import migrate
from crm_core.clock import SystemClock
from crm_core.db import Database, T, Work
from crm_core.enums import Role
from crm_core.identities import normalize_email
from crm_core.journal import Journal
from crm_core.models import Manager
from crm_core.people import PASSWORD_MIN_LENGTH, create_api_token, create_manager
from hub import logs
from hub.app import create_app
from hub.settings import Settings, SettingsError, load_settings

log = logging.getLogger("omnihub")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"omnihub: {exc}", file=sys.stderr)
        return 2
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

    run = commands.add_parser("run", help="serve the hub (API, outbox relay) from one process")
    run.add_argument("--host", help="address to listen on (default from settings: 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default from settings: 8080)")
    run.set_defaults(command=_run)

    migrate_cmd = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate_cmd.set_defaults(command=_migrate)

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
    manager.set_defaults(command=_create_manager)

    token = commands.add_parser("create-token", help="issue an API token (shown once)")
    token.add_argument("--name", required=True, help="what the token is for")
    token.add_argument(
        "--manager-email",
        help="the token speaks for this manager, with their role and visibility "
        "(default: an integration token that sees the whole CRM)",
    )
    token.set_defaults(command=_create_token)
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = dataclasses.replace(settings, **overrides)
    if settings.migrate_on_start:
        migrate.upgrade(settings.database_url)
    log.info("omnihub listening on http://%s:%d", settings.host, settings.port)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        print=None,
        shutdown_timeout=10,
    )
    log.info("omnihub stopped")
    return 0


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    migrate.upgrade(settings.database_url)
    log.info("database schema is up to date")
    return 0


def _create_manager(args: argparse.Namespace, settings: Settings) -> int:
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
