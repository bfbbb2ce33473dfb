"""What every test mail server shares: LMTP delivery, stopping its process group."""

from __future__ import annotations

import contextlib
import os
import signal
import smtplib
import subprocess
import time
from collections.abc import Iterable

from .ports import is_listening


def kill_group(group: int) -> None:
    """SIGTERM the group, then SIGKILL what is left; wait until it is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)


def stop_server(process: subprocess.Popen[bytes], ports: Iterable[int]) -> None:
    """Stop a server's master and every process of its group; free its ports.

    The whole group at once: a master alone takes a second to exit, and client
    sessions (imap, pop3) would outlive it. Clients must see their sessions
    drop, as when a real server goes down, and a restart must find the ports
    free.
    """
    group = process.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stderr is not None:
        process.stderr.close()
    kill_group(group)
    ports = list(ports)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(is_listening(p) for p in ports):
        time.sleep(0.05)


def lmtp_deliver(
    host: str, port: int, sender: str, recipients: list[str], messages: list[bytes]
) -> None:
    """Deliver messages through LMTP in one session, as a real MTA would."""
    with smtplib.LMTP(host, port, local_hostname="localhost", timeout=30) as lmtp:
        for message in messages:
            lmtp.sendmail(sender, recipients, message)
