"""kill -9 in the middle of a burst, twenty times: nothing lost, at most one repeat.

``mail-relay watch`` prints one line per message and writes the mark (the
IMAP UID, the POP3 UIDLs) before it prints the next one, so a crash at any
point repeats at most the one message whose line was printed but whose mark
was not yet on disk. Real Dovecot, real processes, real SIGKILL.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.cli.test_cli import CLI, ROOT, cli_env
from tests.mailserver import DovecotServer
from tests.mailserver.certs import TestCertificate
from tests.mailserver.dovecot import make_message

BURST = 200
KILLS = 20


async def _run_until_killed(
    args: list[str],
    env: dict[str, str],
    kill_after: int | None,
    err: Path,
    missing: set[str] | None = None,
) -> list[str]:
    """Start ``watch``; SIGKILL it after ``kill_after`` lines.

    With ``kill_after=None`` it runs until every subject in ``missing`` was
    printed (or nothing comes for 20 s).
    """
    with err.open("w") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            "watch",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=ROOT,
        )
    assert proc.stdout is not None
    subjects: list[str] = []
    try:
        if kill_after == 0:  # once it watches: the first run sets the mark
            deadline = asyncio.get_running_loop().time() + 20
            while "Watching;" not in err.read_text():
                assert asyncio.get_running_loop().time() < deadline, err.read_text()
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the mark is written after "Watching;"
        while kill_after is None or len(subjects) < kill_after:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 20)
            except TimeoutError:
                break  # nothing more to report
            if not line:
                break
            subjects.append(json.loads(line)["subject"])
            if missing is not None and missing <= set(subjects):
                break
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        # Lines printed before the kill are still in the pipe: they count.
        for line in (await proc.stdout.read()).splitlines():
            subjects.append(json.loads(line)["subject"])
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    return subjects


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
async def test_twenty_kills_in_a_burst_lose_nothing_and_repeat_little(
    tmp_path: Path,
    own_dovecot: DovecotServer,
    mail_cert: TestCertificate,
    protocol: str,
) -> None:
    user = own_dovecot.add_user()
    port = own_dovecot.imaps_port if protocol == "imap" else own_dovecot.pop3s_port
    args = [
        user.address,
        "--protocol",
        protocol,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--security",
        "ssl",
        "--state",
        str(tmp_path / "state.json"),
        "--poll-interval",
        "1",
    ]
    env = cli_env(MAIL_RELAY_PASSWORD=user.password, SSL_CERT_FILE=str(mail_cert.cert))
    # A first run takes the (empty) mailbox as the starting point.
    own_dovecot.deliver(user, make_message("before", to=user.address))
    assert await _run_until_killed(args, env, 0, tmp_path / "err0") == []
    expected = [f"burst {n:03d}" for n in range(BURST)]
    await asyncio.to_thread(
        own_dovecot.deliver, user, [make_message(s, to=user.address) for s in expected]
    )
    chance = random.Random(15)
    runs: list[list[str]] = []
    for kill in range(KILLS):
        runs.append(
            await _run_until_killed(
                args, env, chance.randint(1, 12), tmp_path / f"err{kill + 1}"
            )
        )
    missing = set(expected) - {subject for run in runs for subject in run}
    runs.append(
        await _run_until_killed(args, env, None, tmp_path / "err-last", missing)
    )

    printed = [subject for run in runs for subject in run]
    counts: Counter[str] = Counter(printed)
    assert set(counts) == set(expected), "lost: " + ", ".join(
        sorted(set(expected) - set(counts))
    )
    repeated = len(printed) - BURST
    assert repeated <= KILLS, f"{repeated} repeats for {KILLS} kills: {counts}"
    # A repeat is only ever the last line before a kill, printed again first.
    for before, after in itertools.pairwise(runs):
        again = set(before) & set(after)
        assert again <= {before[-1]}, (before, after)
        assert not again or after[0] == before[-1], (before, after)
