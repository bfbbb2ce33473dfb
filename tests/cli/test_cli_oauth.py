"""``mail-relay ... --oauth``, run as a subprocess against real servers.

The authorization server (tests/mailserver/oauth.py) runs in this process;
Dovecot checks each token there by introspection (its ``oauth2`` passdb) and
so does the aiosmtpd XOAUTH2 handler. The user's part of the sign-in is done
on the server's own HTML pages with a plain HTTP client: the device code is
typed on /device, the browser sign-in filled in on /authorize, the redirect
followed to the command's loopback listener.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import stat
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest

from tests.cli.test_cli import (
    CLI,
    DOMAIN,
    ROOT,
    Result,
    WatchProcess,
    cli_env,
    detection_args,
)
from tests.mailserver import DovecotServer, MailUser, OAuthServer, SmtpServer
from tests.mailserver.certs import TestCertificate
from tests.mailserver.dns import DnsTestServer
from tests.mailserver.dovecot import make_message
from tests.mailserver.http import ConfigHttpServer

CLIENT_ID = "mail-relay-cli"
CODE_LINE = re.compile(r"open (\S+) and enter the code (\S+) ")
URL_LINE = re.compile(r"^\s+(http://127\.0\.0\.1:\d+/authorize\?\S+)$", re.M)


@pytest.fixture
def cli_app(oauth_server: OAuthServer) -> str:
    """The user's own app registration: public, loopback redirects allowed."""
    oauth_server.register_client(CLIENT_ID, redirect_uris=("http://127.0.0.1/",))
    return CLIENT_ID


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "mail-relay" / "tokens.json"


def oauth_args(
    oauth_server: OAuthServer,
    dovecot: DovecotServer,
    smtp: SmtpServer | None,
    token_file: Path,
    cert: TestCertificate,
) -> list[str]:
    """A self-hosted provider (--issuer) and the local servers, given by hand."""
    args = [
        "--oauth",
        "--issuer", oauth_server.base,
        "--scope", "mail",
        "--scope", "offline_access",
        "--token-file", str(token_file),
        "--host", "127.0.0.1",
        "--port", str(dovecot.imaps_port),
        "--security", "ssl",
        "--ca-file", str(cert.cert),
    ]  # fmt: skip
    if smtp is not None:
        args += [
            "--smtp-host", "127.0.0.1",
            "--smtp-port", str(smtp.starttls_port),
            "--smtp-security", "starttls",
        ]  # fmt: skip
    return args


class Running:
    """A command whose stderr is read while it runs (it waits for the user)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.err = ""

    async def wait_for(
        self, pattern: re.Pattern[str], timeout: float = 20
    ) -> re.Match[str]:
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            while not (match := pattern.search(self.err)):
                line = await self.proc.stderr.readline()
                if not line:
                    raise AssertionError(
                        f"ended before {pattern.pattern!r}: {self.err}"
                    )
                self.err += line.decode()
        return match

    async def result(self, timeout: float = 30) -> Result:
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        out, err = await asyncio.wait_for(
            asyncio.gather(self.proc.stdout.read(), self.proc.stderr.read()), timeout
        )
        await self.proc.wait()
        assert self.proc.returncode is not None
        return Result(self.proc.returncode, out.decode(), self.err + err.decode())


@pytest.fixture
async def start_cli() -> AsyncIterator:
    started: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> Running:
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(),
            cwd=ROOT,
        )
        started.append(proc)
        return Running(proc)

    yield start
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def run(start_cli, *args: str) -> Result:
    return await (await start_cli(*args)).result()


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((values.get("action", ""), {}))
        elif tag == "input" and self.forms and "name" in values:
            self.forms[-1][1][values["name"]] = values.get("value", "")


async def fill_in(
    browser: aiohttp.ClientSession, url: str, fields: dict[str, str]
) -> aiohttp.ClientResponse:
    """Open a page, fill in its form, submit it (without following redirects)."""
    async with browser.get(url) as page:
        assert page.status == 200, await page.text()
        forms = _Forms()
        forms.feed(await page.text())
    action, hidden = forms.forms[0]
    return await browser.post(
        urljoin(url, action), data={**hidden, **fields}, allow_redirects=False
    )


async def approve_device(running: Running, user: MailUser) -> None:
    """What the user does: open the page shown, type the code, sign in."""
    match = await running.wait_for(CODE_LINE)
    page, code = match[1], match[2]
    async with aiohttp.ClientSession() as browser:
        response = await fill_in(
            browser,
            page,
            {
                "user_code": code,
                "username": user.address,
                "password": user.password,
                "action": "allow",
            },
        )
        assert "signed in" in await response.text()


def stored(token_file: Path) -> dict:
    (entry,) = json.loads(token_file.read_text())["sign_ins"].values()
    return entry


# -- tests -------------------------------------------------------------------


async def test_check_signs_in_with_a_device_code_and_keeps_it(
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_smtp: SmtpServer,
    oauth_user: MailUser,
    mail_cert: TestCertificate,
    cli_app: str,
    token_file: Path,
    start_cli,
) -> None:
    args = oauth_args(oauth_server, oauth_dovecot, oauth_smtp, token_file, mail_cert)
    running = await start_cli(
        "check", oauth_user.address, *args, "--client-id", cli_app
    )
    await approve_device(running, oauth_user)
    result = await running.result()

    assert result.code == 0, result.text
    assert "Sign-in: OAuth2 with 127.0.0.1" in result.out
    assert "IMAP: login OK" in result.out
    assert "SMTP: login OK" in result.out
    assert f"Signed in as {oauth_user.address}" in result.err
    assert str(token_file) in result.err
    # The sign-in is kept for the owner only, and never printed.
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    entry = stored(token_file)
    assert entry["client_id"] == cli_app
    tokens = entry["tokens"]
    assert tokens["refresh_token"]
    assert tokens["access_token"] not in result.text
    assert tokens["refresh_token"] not in result.text
    assert oauth_server.by_access[tokens["access_token"]].user == oauth_user.address

    # Next run: no --client-id, no sign-in; the stored token logs in.
    polls = oauth_server.counts["device_poll"]
    again = await run(start_cli, "check", oauth_user.address, *args, "--verbose")
    assert again.code == 0, again.text
    assert "enter the code" not in again.err
    # The conversation is shown, the token in none of its forms.
    assert "AUTHENTICATE XOAUTH2 ****" in again.err
    xoauth2 = (
        f"user={oauth_user.address}\x01auth=Bearer {tokens['access_token']}\x01\x01"
    )
    for secret in (tokens["access_token"], base64.b64encode(xoauth2.encode()).decode()):
        assert secret not in again.text
    assert oauth_server.counts["device_poll"] == polls
    assert stored(token_file) == entry


async def test_expired_token_is_refreshed_and_the_rotation_kept(
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_user: MailUser,
    mail_cert: TestCertificate,
    cli_app: str,
    token_file: Path,
    start_cli,
) -> None:
    args = oauth_args(oauth_server, oauth_dovecot, None, token_file, mail_cert)
    running = await start_cli(
        "check", oauth_user.address, *args, "--client-id", cli_app
    )
    await approve_device(running, oauth_user)
    assert (await running.result()).code == 0
    first = stored(token_file)["tokens"]

    # The token dies early (revoked server-side, clock skew): Dovecot refuses
    # it, the command refreshes once and logs in; the rotated refresh token
    # replaces the used one in the file.
    oauth_server.expire(first["access_token"])
    refreshes = oauth_server.refresh_requests
    result = await run(start_cli, "check", oauth_user.address, *args)
    assert result.code == 0, result.text
    assert "IMAP: login OK" in result.out
    assert oauth_server.refresh_requests == refreshes + 1
    second = stored(token_file)["tokens"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


async def test_revoked_sign_in_is_exit_11_and_sign_in_again_works(
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_user: MailUser,
    mail_cert: TestCertificate,
    cli_app: str,
    token_file: Path,
    start_cli,
) -> None:
    args = oauth_args(oauth_server, oauth_dovecot, None, token_file, mail_cert)
    running = await start_cli(
        "check", oauth_user.address, *args, "--client-id", cli_app
    )
    await approve_device(running, oauth_user)
    assert (await running.result()).code == 0
    oauth_server.revoke_all(oauth_user.address)

    result = await run(start_cli, "check", oauth_user.address, *args)
    assert result.code == 11, result.text
    assert "Sign in again with --oauth --sign-in" in result.text

    running = await start_cli("check", oauth_user.address, *args, "--sign-in")
    await approve_device(running, oauth_user)
    result = await running.result()
    assert result.code == 0, result.text


async def test_authorization_server_down_is_exit_5_and_keeps_the_sign_in(
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_user: MailUser,
    mail_cert: TestCertificate,
    cli_app: str,
    token_file: Path,
    start_cli,
) -> None:
    args = oauth_args(oauth_server, oauth_dovecot, None, token_file, mail_cert)
    # --issuer needs the metadata: a provider given by hand does not. Sign in,
    # then make the stored token expire so the next run must refresh.
    running = await start_cli(
        "check", oauth_user.address, *args, "--client-id", cli_app
    )
    await approve_device(running, oauth_user)
    assert (await running.result()).code == 0
    before = token_file.read_text()
    oauth_server.token_failure = 503
    try:
        oauth_server.expire(stored(token_file)["tokens"]["access_token"])
        result = await run(start_cli, "check", oauth_user.address, *args)
    finally:
        oauth_server.token_failure = None
    assert result.code == 5, result.text
    assert "sign-in service could not give a token" in result.text
    assert "sign in again" not in result.text.lower()
    assert token_file.read_text() == before


async def test_browser_sign_in_with_a_loopback_redirect(
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_user: MailUser,
    mail_cert: TestCertificate,
    cli_app: str,
    token_file: Path,
    start_cli,
) -> None:
    args = oauth_args(oauth_server, oauth_dovecot, None, token_file, mail_cert)
    running = await start_cli(
        "check",
        oauth_user.address,
        *args,
        "--client-id",
        cli_app,
        "--oauth-flow",
        "browser",
    )
    await sign_in_in_the_browser(running, oauth_user)
    result = await running.result()
    assert result.code == 0, result.text
    assert "IMAP: login OK" in result.out
    assert stored(token_file)["tokens"]["refresh_token"]


async def test_send_with_oauth(
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_smtp: SmtpServer,
    oauth_user: MailUser,
    mail_cert: TestCertificate,
    cli_app: str,
    token_file: Path,
    start_cli,
) -> None:
    args = oauth_args(oauth_server, oauth_dovecot, oauth_smtp, token_file, mail_cert)
    running = await start_cli(
        "send",
        oauth_user.address,
        *args,
        "--client-id",
        cli_app,
        "--to",
        oauth_user.address,
        "--subject",
        "Sent with a token",
        "--text",
        "hello",
    )
    await approve_device(running, oauth_user)
    result = await running.result()
    assert result.code == 0, result.text
    assert f"Sent to {oauth_user.address}" in result.out
    received = oauth_smtp.received_by(oauth_user.address)
    assert any(b"Sent with a token" in m.data for m in received)
    assert all(m.login == oauth_user.address for m in received)


@pytest.fixture
async def http() -> AsyncIterator[ConfigHttpServer]:
    async with ConfigHttpServer() as server:
        yield server


@pytest.fixture
async def dns() -> AsyncIterator[DnsTestServer]:
    async with DnsTestServer() as server:
        yield server


async def sign_in_in_the_browser(running: Running, user: MailUser) -> None:
    """What the user does: open the address shown, sign in, get redirected."""
    url = (await running.wait_for(URL_LINE))[1]
    assert "code_challenge_method=S256" in url
    async with aiohttp.ClientSession() as browser:
        response = await fill_in(
            browser,
            url,
            {"username": user.address, "password": user.password, "action": "allow"},
        )
        location = response.headers["Location"]
        assert location.startswith("http://127.0.0.1:")
        async with browser.get(location) as landing:
            assert "Signed in to Mail Relay" in await landing.text()


async def test_provider_declared_by_autoconfig(
    http: ConfigHttpServer,
    dns: DnsTestServer,
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_user: MailUser,
    mail_cert: TestCertificate,
    cli_app: str,
    token_file: Path,
    start_cli,
) -> None:
    """The ISPDB says "OAuth2" and where: no --issuer, a browser sign-in."""
    base = oauth_server.base
    http.files[f"/ispdb/{DOMAIN}"] = f"""<clientConfig version="1.1">
<emailProvider id="{DOMAIN}"><domain>{DOMAIN}</domain>
<incomingServer type="imap"><hostname>127.0.0.1</hostname>
<port>{oauth_dovecot.imaps_port}</port><socketType>SSL</socketType>
<username>%EMAILADDRESS%</username><authentication>OAuth2</authentication>
</incomingServer></emailProvider>
<oAuth2><issuer>127.0.0.1</issuer><scope>mail offline_access</scope>
<authURL>{base}/authorize</authURL><tokenURL>{base}/token</tokenURL></oAuth2>
</clientConfig>"""
    assert oauth_user.address.endswith("@" + DOMAIN)
    running = await start_cli(
        "check",
        oauth_user.address,
        *detection_args(http, dns),
        "--oauth",
        "--client-id",
        cli_app,
        "--token-file",
        str(token_file),
        "--ca-file",
        str(mail_cert.cert),
    )
    await sign_in_in_the_browser(running, oauth_user)
    result = await running.result()
    assert result.code == 0, result.text
    assert "Settings from: the ISP database (ISPDB)" in result.out
    assert "IMAP: login OK" in result.out


async def test_oauth_usage_errors(
    oauth_dovecot: DovecotServer, mail_cert: TestCertificate, start_cli, tmp_path
) -> None:
    base = [
        "check", "ann@mailrelay.test", "--oauth",
        "--host", "127.0.0.1", "--port", str(oauth_dovecot.imaps_port),
        "--token-file", str(tmp_path / "t.json"),
    ]  # fmt: skip
    unknown = await run(start_cli, *base, "--client-id", "x")
    assert unknown.code == 2
    assert "no OAuth2 sign-in is known for mailrelay.test" in unknown.err
    assert "--issuer" in unknown.err
    no_scope = await run(start_cli, *base, "--issuer", "http://127.0.0.1:1")
    assert no_scope.code == 2
    assert "--scope" in no_scope.err
    no_client = await run(start_cli, *base, "--tenant", "common")
    assert no_client.code == 2
    assert "give --client-id" in no_client.err
    assert not (tmp_path / "t.json").exists()


async def test_watch_a_config_account_with_its_stored_sign_in(
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_user: MailUser,
    mail_cert: TestCertificate,
    cli_app: str,
    token_file: Path,
    start_cli,
    tmp_path: Path,
) -> None:
    args = oauth_args(oauth_server, oauth_dovecot, None, token_file, mail_cert)
    running = await start_cli(
        "check", oauth_user.address, *args, "--client-id", cli_app
    )
    await approve_device(running, oauth_user)
    assert (await running.result()).code == 0
    # The token dies: the watcher's login refreshes it and the file follows.
    first = stored(token_file)["tokens"]
    oauth_server.expire(first["access_token"])
    config = tmp_path / "accounts.toml"
    config.write_text(
        f"""state = "{tmp_path / "state.json"}"

[[account]]
address = "{oauth_user.address}"
host = "127.0.0.1"
port = {oauth_dovecot.imaps_port}
security = "ssl"
oauth = true
issuer = "{oauth_server.base}"
scopes = ["mail", "offline_access"]
"""
    )
    watch = await WatchProcess.start(
        "--config",
        str(config),
        "--token-file",
        str(token_file),
        env=cli_env(SSL_CERT_FILE=str(mail_cert.cert)),
        err_path=tmp_path / "err",
    )
    try:
        oauth_dovecot.deliver(
            oauth_user, make_message("Read with a token", to=oauth_user.address)
        )
        (event,) = await watch.lines(1)
        assert event["subject"] == "Read with a token"
        assert event["account"] == oauth_user.address
        code, _ = await watch.interrupt()
    finally:
        await watch.kill()
    assert code == 0, watch.stderr
    assert stored(token_file)["tokens"]["refresh_token"] != first["refresh_token"]
    assert first["refresh_token"] not in watch.stderr
