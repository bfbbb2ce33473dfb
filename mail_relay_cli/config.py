"""Accounts for ``watch``: one address, or a TOML/JSON file of several."""

from __future__ import annotations

import argparse
import json
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from custom_components.mail_relay.mail.options import (
    EventOptions,
    ImapWatchOptions,
    Pop3PollOptions,
    Retention,
)

from .account import Account, resolve_servers, warn_insecure
from .errors import usage_error
from .oauth import CONFIG_KEYS as OAUTH_KEYS
from .oauth import add_credentials
from .output import say
from .passwords import PasswordSource
from .state import default_state_path

MIN_POLL_INTERVAL = 1.0


CONFIG_KEYS = frozenset(
    {
        "address", "id", "protocol", "host", "port", "security", "username",
        "smtp_host", "smtp_port", "smtp_security", "smtp_username", "insecure",
        "password", "password_env", "password_file", "folder", "folders", "push",
        "poll_interval", "retention", "retention_days", "text_limit",
        "include_headers", "mark_seen",
    }
) | OAUTH_KEYS  # fmt: skip


def load_config(path: Path) -> dict[str, Any]:
    """Read a JSON or TOML config file (by extension; TOML unless ``.json``)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise usage_error(f"cannot read {path}: {err.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise usage_error(f"{path} is not valid: {err}") from None
    if not isinstance(data, dict):
        raise usage_error(f"{path}: expected a table/object at the top")
    accounts = data.get("accounts", data.get("account"))
    if not isinstance(accounts, list) or not accounts:
        raise usage_error(f"{path}: no [[account]] entries")
    for number, spec in enumerate(accounts, 1):
        if not isinstance(spec, dict) or "address" not in spec:
            raise usage_error(f"{path}: account {number} has no address")
        unknown = sorted(set(spec) - CONFIG_KEYS)
        if unknown:
            raise usage_error(
                f"{path}: account {number} has unknown keys: {', '.join(unknown)}"
            )
        if "password" in spec and path.stat().st_mode & 0o077:
            say(
                f"warning: {path} holds a password and other users can read it;"
                " chmod 600 it, or use password_env / password_file"
            )
    return data


def _options(
    account: Account, args: argparse.Namespace, spec: dict[str, Any]
) -> Account:
    folders = spec.get("folders") or spec.get("folder") or args.folder or ["INBOX"]
    if isinstance(folders, str):
        folders = [folders]
    interval = float(spec.get("poll_interval", args.poll_interval))
    if interval < MIN_POLL_INTERVAL:
        raise usage_error(f"the poll interval must be at least {MIN_POLL_INTERVAL:g} s")
    try:
        retention = Retention(spec.get("retention", args.retention))
    except ValueError:
        raise usage_error("retention must be keep, delete or days") from None
    return replace(
        account,
        folders=tuple(str(f) for f in folders),
        imap=ImapWatchOptions(
            push=bool(spec.get("push", not args.no_push)),
            poll_interval=interval,
            mark_seen=bool(spec.get("mark_seen", args.mark_seen)),
        ),
        pop3=Pop3PollOptions(
            poll_interval=interval,
            retention=retention,
            retention_days=int(spec.get("retention_days", args.retention_days)),
        ),
        event=EventOptions(
            text_limit=int(spec.get("text_limit", args.text_limit)),
            include_headers=bool(spec.get("include_headers", args.include_headers)),
        ),
        entry_id=spec.get("id"),
    )


async def watch_accounts(args: argparse.Namespace) -> tuple[list[Account], Path]:
    """Build the accounts from the address or the config file, passwords in."""
    passwords = PasswordSource(args.password_fd)
    state_path = args.state
    specs: list[dict[str, Any]]
    if args.config:
        config = load_config(Path(args.config).expanduser())
        specs = config.get("accounts", config.get("account"))
        if state_path is None and config.get("state"):
            state_path = Path(str(config["state"])).expanduser()
    elif args.address:
        specs = [{"address": args.address}]
    else:
        raise usage_error("give an ADDRESS or --config FILE")
    accounts = []
    for spec in specs:
        account = await resolve_servers(
            args,
            str(spec["address"]),
            need_incoming=True,
            need_smtp=False,
            spec=spec if args.config else None,
        )
        account = replace(account, smtp=None)
        if account.detect_seconds is not None:
            say(f"{account.address}: settings from {account.found_in()}")
        if account.note:
            say(account.note)
        warn_insecure(account)
        account = _options(account, args, spec if args.config else {})
        accounts.append(await add_credentials(account, args, passwords, spec))
    return accounts, Path(state_path) if state_path else default_state_path()
