"""``--oauth``: sign in with the provider instead of a password.

Which authorization server: ``--issuer`` (a self-hosted one, by its metadata),
else what detection found (a preset such as Outlook.com or Gmail, or an
autoconfig ``<oAuth2>`` element), with ``--tenant`` for Microsoft. How: the
device code (a short code typed at the provider's page; Microsoft) when the
provider offers it, else the browser with a loopback redirect (Google, whose
device flow refuses the Gmail scope); ``--oauth-flow`` chooses. The tokens
are kept in the token file and refreshed (and rewritten) as they rotate.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import webbrowser
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from custom_components.mail_relay.mail.oauth.device import start_device_flow
from custom_components.mail_relay.mail.oauth.endpoints import (
    OAuthProvider,
    discover,
    microsoft,
)
from custom_components.mail_relay.mail.oauth.loopback import sign_in_with_browser
from custom_components.mail_relay.mail.oauth.refreshing import RefreshingTokenSource
from custom_components.mail_relay.mail.oauth.tokens import OAuthClient, TokenSet
from custom_components.mail_relay.mail.providers import find_provider

from .account import Account
from .errors import usage_error
from .output import say
from .passwords import PasswordSource, add_password
from .tokens import SignIn, default_token_path, open_token_file, sign_in_key
from .wire import MASKER

CLIENT_SECRET_ENV = "MAIL_RELAY_CLIENT_SECRET"  # noqa: S105  # a variable name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--oauth`` options (check, watch and send share them)."""
    group = parser.add_argument_group(
        "OAuth2 sign-in (Outlook.com, Microsoft 365, Gmail, a self-hosted provider)"
    )
    group.add_argument(
        "--oauth",
        action="store_true",
        help="sign in with the provider instead of a password: the device code"
        " (Microsoft) or the browser (Google); the sign-in is kept in"
        f" {default_token_path()} (0600) and refreshed",
    )
    group.add_argument(
        "--client-id",
        help="your app's client id (Microsoft Entra app registration, Google"
        " 'Desktop app' client); stored with the sign-in",
    )
    group.add_argument(
        "--client-secret",
        help=f"your app's client secret, if it has one (else {CLIENT_SECRET_ENV})",
    )
    group.add_argument(
        "--tenant",
        help="Microsoft tenant: common (default), consumers, organizations or"
        " a tenant id / domain",
    )
    group.add_argument(
        "--issuer",
        metavar="URL",
        help="a self-hosted provider: its issuer URL (read from"
        " /.well-known/openid-configuration)",
    )
    group.add_argument(
        "--scope",
        action="append",
        help="scopes to ask for (repeatable; default: the provider's mail scopes)",
    )
    group.add_argument(
        "--oauth-flow",
        choices=["device", "browser"],
        help="device code or browser sign-in (default: device code when offered)",
    )
    group.add_argument(
        "--sign-in",
        action="store_true",
        help="sign in again even when a stored sign-in exists",
    )
    group.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"where sign-ins are kept (default {default_token_path()})",
    )


# What a config file's account may say about its sign-in (``watch --config``).
CONFIG_KEYS = frozenset({"oauth", "client_id", "tenant", "issuer", "scopes"})


def _options(args: argparse.Namespace, spec: dict[str, Any] | None) -> dict[str, Any]:
    """Return the sign-in options: the command line's, or a config account's."""
    spec = spec or {}
    scopes = spec.get("scopes", args.scope or ())
    return {
        "client_id": spec.get("client_id", args.client_id),
        "tenant": spec.get("tenant", args.tenant),
        "issuer": spec.get("issuer", args.issuer),
        "scopes": tuple(
            str(s) for s in ([scopes] if isinstance(scopes, str) else scopes)
        ),
    }


async def _provider(
    args: argparse.Namespace,
    options: dict[str, Any],
    account: Account,
    session: aiohttp.ClientSession,
) -> OAuthProvider:
    """Return the authorization server: --issuer, else what detection found."""
    scopes: tuple[str, ...] = options["scopes"]
    tenant: str | None = options["tenant"]
    try:
        if options["issuer"]:
            if not scopes:
                raise usage_error("--issuer needs the scopes to ask for: --scope")
            return await discover(
                session, str(options["issuer"]), scopes, http_timeout=args.timeout
            )
        found = account.oauth
        if found is None and (preset := find_provider(account.address)):
            found = preset.oauth  # servers given by hand, a known address
        if found is None and tenant:
            found = microsoft()
        if found is None:
            domain = account.address.rpartition("@")[2]
            raise usage_error(
                f"no OAuth2 sign-in is known for {domain}: give the provider"
                " with --issuer URL"
            )
        if tenant:
            found = found.with_tenant(str(tenant))
    except ValueError as err:
        raise usage_error(str(err)) from None
    return replace(found, scopes=scopes) if scopes else found


def _client(
    args: argparse.Namespace, client_id: str | None, stored: SignIn | None
) -> OAuthClient | None:
    """Return the app: --client-id (and its secret), else the stored sign-in's."""
    secret = args.client_secret or os.environ.get(CLIENT_SECRET_ENV) or None
    if client_id:
        if stored and stored.client.client_id == client_id and secret is None:
            secret = stored.client.client_secret
        return OAuthClient(client_id, secret)
    if stored is not None and secret is not None:
        return replace(stored.client, client_secret=secret)
    return stored.client if stored is not None else None


def _has_desktop() -> bool:
    """Return whether a graphical browser can open (not a text one in our tty)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def _show_url(url: str) -> None:
    say(f"To sign in, open this address in a browser:\n  {url}")
    if sys.stdin.isatty() and _has_desktop():
        with contextlib.suppress(webbrowser.Error):
            webbrowser.open(url)
    say("Waiting for the sign-in...")


async def _sign_in(
    args: argparse.Namespace,
    account: Account,
    session: aiohttp.ClientSession,
    provider: OAuthProvider,
    client: OAuthClient,
) -> TokenSet:
    """Run the device code or the browser sign-in; return the tokens."""
    flow = args.oauth_flow or ("device" if provider.device_code_url else "browser")
    if flow == "device":
        if provider.device_code_url is None:
            raise usage_error(
                f"{provider.name} offers no device code sign-in: use"
                " --oauth-flow browser"
            )
        device = await start_device_flow(
            session, provider, client, http_timeout=args.timeout
        )
        code = device.code
        minutes = max(1, round((code.expires_at - time.time()) / 60))
        say(
            f"To sign in as {account.address}, open {code.verification_uri}"
            f" and enter the code {code.user_code} (valid {minutes} min)."
        )
        say("Waiting for the sign-in...")
        return await device.wait()
    return await sign_in_with_browser(
        session,
        provider,
        client,
        show_url=_show_url,
        login_hint=account.address,
        http_timeout=args.timeout,
    )


async def add_oauth(
    account: Account,
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    spec: dict[str, Any] | None = None,
) -> Account:
    """Give both servers a token source: the stored sign-in, else a new one."""
    options = _options(args, spec)
    provider = await _provider(args, options, account, session)
    store = await open_token_file(
        Path(args.token_file) if args.token_file else default_token_path()
    )
    key = sign_in_key(account.address, provider.token_url)
    stored = store.get(key)
    client = _client(args, options["client_id"], stored)
    if client is None:
        raise usage_error(
            "give --client-id: the id of the app you registered at"
            f" {provider.name} (no sign-in is stored for {account.address})"
        )
    same_app = stored is not None and stored.client.client_id == client.client_id
    tokens = stored.tokens if stored is not None and same_app else None
    if tokens is None or args.sign_in:
        tokens = await _sign_in(args, account, session, provider, client)
        await store.put(key, SignIn(client, tokens))
        say(f"Signed in as {account.address}; the sign-in is kept in {store.path}.")

    async def rotated(fresh: TokenSet) -> None:
        MASKER.add(account.address, fresh.access_token)
        try:
            await store.put(key, SignIn(client, fresh))
        except OSError as err:
            # The refreshed token works for this run; the file keeps a used one.
            say(
                f"warning: cannot save the refreshed sign-in to {store.path}"
                f" ({err.strerror}); the next run will have to sign in again"
            )

    MASKER.add(account.address, tokens.access_token)
    source = RefreshingTokenSource(
        session,
        provider,
        client,
        tokens,
        on_update=rotated,
        http_timeout=args.timeout,
    )
    incoming = (
        replace(account.incoming, token_source=source) if account.incoming else None
    )
    smtp = account.smtp
    if smtp is not None and smtp.username:
        smtp = replace(smtp, token_source=source)
    return replace(
        account, incoming=incoming, smtp=smtp, oauth=provider, sign_in=source
    )


async def add_credentials(
    account: Account,
    args: argparse.Namespace,
    passwords: PasswordSource,
    spec: dict[str, Any] | None = None,
) -> Account:
    """Sign in with OAuth2 (``--oauth``) or ask for the password."""
    if args.oauth or (spec or {}).get("oauth"):
        session: aiohttp.ClientSession = args.http
        return await add_oauth(account, args, session, spec)
    return await add_password(account, passwords, spec)
