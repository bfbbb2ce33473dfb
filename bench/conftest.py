"""Benchmark fixtures: the test suite's real servers, a counting proxy, a results sink.

The benchmarks reuse tests/conftest.py (Dovecot, aiosmtpd, users, certificates) and
pytest-homeassistant-custom-component's real ``hass``. Two settings differ from the
test suite, for both sides alike: the event loop runs without asyncio debug mode
(the test plugin turns it on, which makes every callback slower), and logging stays
at WARNING as in a production Home Assistant without debug logging.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import *  # noqa: F403 (the real-server fixtures)
from tests.conftest import _loopback_sockets  # noqa: F401 (not in *)
from tests.mailserver import TestCertificate

from .proxy import ProxyControl

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "build" / "bench-results"))


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def enable_event_loop_debug(event_loop: asyncio.AbstractEventLoop) -> None:
    """Override the test plugin: no asyncio debug mode while measuring."""
    event_loop.set_debug(False)


@pytest.fixture(scope="session", autouse=True)
def _trust_cert(mail_cert: TestCertificate) -> Iterator[None]:
    """Mail Relay verifies certificates; trust the test CA as a user would."""
    old = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(mail_cert.cert)
    yield
    if old is None:
        os.environ.pop("SSL_CERT_FILE", None)
    else:
        os.environ["SSL_CERT_FILE"] = old


@pytest.fixture(scope="session")
def proxy_port() -> Iterator[int]:
    """Start the counting proxy in its own process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.proxy"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    assert line.startswith("CONTROL "), line
    yield int(line.split()[1])
    assert process.stdin is not None
    process.stdin.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def proxy(proxy_port: int) -> ProxyControl:
    """Control connection to the counting proxy."""
    return ProxyControl(proxy_port)


@pytest.fixture(scope="session")
def record() -> Callable[..., None]:
    """Write one scenario's figures to the results directory (merged by bench.report)."""
    RESULTS.mkdir(parents=True, exist_ok=True)

    def write(scenario: str, data: dict[str, Any], part: str | None = None) -> None:
        name = f"{scenario}.{part}.json" if part else f"{scenario}.json"
        (RESULTS / name).write_text(json.dumps({scenario: data}, indent=1, default=str))

    return write


class SmtpProcess:
    """Client of bench.smtpd: the test SMTP server in its own process."""

    def __init__(self, cert: TestCertificate) -> None:
        self.host = "127.0.0.1"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.smtpd", str(cert.cert), str(cert.key)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        assert line.startswith("PORTS "), line
        starttls, ssl_port, plain = (int(p) for p in line.split()[1:])
        self.ports = {"starttls": starttls, "ssl": ssl_port, "plain": plain}

    def _ask(self, line: str) -> str:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()
        return self._process.stdout.readline().strip()

    def add_user(self, login: str, password: str) -> None:
        """Accept these credentials for AUTH."""
        self._ask(f"user {login} {password}")

    def accepted(self, text: str) -> int:
        """How many accepted messages have ``text`` in their subject."""
        return int(self._ask(f"count {text}"))

    def stop(self) -> None:
        """Stop the server process."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@pytest.fixture(scope="session")
def smtp_process(mail_cert: TestCertificate) -> Iterator[SmtpProcess]:
    """aiosmtpd (STARTTLS + AUTH submission) in a process of its own."""
    server = SmtpProcess(mail_cert)
    yield server
    server.stop()
