"""Fixtures of the browser tests: mail servers, an ISPDB, Home Assistant, Chromium.

One Home Assistant process serves the whole module; every test launches
Chromium and opens its own browser context (its own login and language). Screenshots go to
``$E2E_ARTIFACTS`` when set, else to pytest's temp directory; the path is
printed at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_socket

from tests.mailserver import DovecotServer, SmtpServer, TestCertificate
from tests.mailserver.http import config_xml

from .homeassistant import HomeAssistantProcess, StaticIspdb

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The test mailboxes' domain (tests.mailserver) is in no preset, so the
# wizard finds its servers in the ISPDB this module serves.
MAIL_DOMAIN = "mailrelay.test"
# A domain whose ISPDB entry points at a server with an untrusted certificate.
SELF_SIGNED_DOMAIN = "selfsigned.test"

_artifact_dirs: list[Path] = []


@dataclass
class E2eEnvironment:
    """Everything a browser test talks to."""

    hass: HomeAssistantProcess
    ispdb: StaticIspdb
    dovecot: DovecotServer
    smtp: SmtpServer
    untrusted: DovecotServer
    artifacts: Path


def chromium_or_fail() -> Path:
    """Return Chromium's path; fail (never skip) when it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's chromium. "
            "Run scripts/setup (it runs `apt-get install chromium`).",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the directory the screenshots go to."""
    if configured := os.environ.get("E2E_ARTIFACTS"):
        path = Path(configured).resolve()
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("e2e-artifacts", numbered=True)
    _artifact_dirs.append(path)
    return path


@pytest.fixture(scope="module")
def e2e(
    tmp_path_factory: pytest.TempPathFactory,
    mail_cert: TestCertificate,
    other_cert: TestCertificate,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    artifacts: Path,
) -> Iterator[E2eEnvironment]:
    """Start the ISPDB, a Dovecot nobody trusts, and Home Assistant; onboard."""
    chromium_or_fail()
    # Module fixtures run before the per-test socket fixture; loopback only.
    pytest_socket.enable_socket()
    root = tmp_path_factory.mktemp("e2e")
    untrusted = DovecotServer(other_cert)
    ispdb = StaticIspdb(root / "ispdb")
    hass = HomeAssistantProcess(root / "config", ispdb.url, mail_cert.cert)
    ispdb.publish(
        MAIL_DOMAIN,
        config_xml(
            domain=MAIL_DOMAIN,
            name="Mail Relay test mail",
            imap=("127.0.0.1", dovecot.imaps_port, "SSL"),
            pop3=("127.0.0.1", dovecot.pop3s_port, "SSL"),
            smtp=("127.0.0.1", smtp_server.starttls_port, "STARTTLS"),
        ),
    )
    try:
        untrusted.start()
        ispdb.publish(
            SELF_SIGNED_DOMAIN,
            config_xml(
                domain=SELF_SIGNED_DOMAIN,
                name="Self-signed mail",
                imap=("127.0.0.1", untrusted.imaps_port, "SSL"),
                smtp=None,
            ),
        )
        ispdb.start()
        hass.start()
        hass.onboard()
        yield E2eEnvironment(hass, ispdb, dovecot, smtp_server, untrusted, artifacts)
    finally:
        hass.stop()
        ispdb.stop()
        untrusted.cleanup()
        if hass.log_file.exists():
            shutil.copy(hass.log_file, artifacts / "home-assistant.log")


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Home Assistant runs in its own process here; no in-process instance."""


@pytest.fixture
def browser(e2e: E2eEnvironment) -> Iterator[object]:
    """Launch Debian's Chromium through Playwright (never a downloaded browser).

    Per test, not per module: Playwright's sync API keeps its event loop
    marked as running while it lives, and the Home Assistant test plugin's
    async fixtures need the thread's loop free between tests.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(chromium_or_fail()),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield chromium
        finally:
            chromium.close()
    # Playwright's loop leaves its executor threads ending in the background;
    # the Home Assistant test plugin fails a test that leaves threads behind.
    for thread in threading.enumerate():
        if (
            thread.name.startswith("asyncio_")
            and thread is not threading.current_thread()
        ):
            thread.join(timeout=5)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the test, for the failure screenshots."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where the screenshots are."""
    for path in _artifact_dirs:
        terminalreporter.write_line(f"e2e screenshots and Home Assistant log: {path}")
