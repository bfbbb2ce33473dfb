"""Parts of the CLI that need no server: masking, config files, the state file."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from custom_components.mail_relay.mail.trace import RECV, SEND
from mail_relay_cli.config import load_config
from mail_relay_cli.errors import CliError, Exit
from mail_relay_cli.state import StateFile, write_atomically
from mail_relay_cli.wire import Masker, trace


def test_masker_scrubs_the_password_in_every_form_it_travels_in() -> None:
    # The conversation is masked by shape in the core (tests/mail/test_trace.py);
    # everything logged is also scrubbed of the secret itself.
    masker = Masker()
    masker.add("jean@example.org", 'p@ss "word"\\1')
    plain = base64.b64encode(b'\0jean@example.org\0p@ss "word"\\1').decode()
    quoted = 'p@ss \\"word\\"\\\\1'

    assert masker.scrub(f'x p@ss "word"\\1 y {plain}') == "x **** y ****"
    assert masker.scrub(f'A1 LOGIN "jean@example.org" "{quoted}"') == (
        'A1 LOGIN "jean@example.org" "****"'
    )
    assert masker.scrub("MAIL FROM:<jean@example.org>") == (
        "MAIL FROM:<jean@example.org>"
    )


def test_wire_prints_each_line_and_at_most_twenty_per_piece(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="mail_relay.wire"):
        trace("smtp", SEND, b"AUTH PLAIN ****\r\n")
        trace("pop3", RECV, b"".join(b"%d\r\n" % n for n in range(25)))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "smtp C: AUTH PLAIN ****"
    assert lines[1:3] == ["pop3 S: 0", "pop3 S: 1"]
    assert lines[20] == "pop3 S: 19"
    assert lines[21:] == ["pop3 S: ... (5 more lines)"]


def test_config_file_mistakes_are_usage_errors(tmp_path: Path) -> None:
    config = tmp_path / "accounts.toml"
    config.write_text('[[account]]\naddress = "a@example.org"\nhots = "typo"\n')
    with pytest.raises(CliError, match="unknown keys: hots") as err:
        load_config(config)
    assert err.value.code is Exit.USAGE

    config.write_text("[[account]\n")
    with pytest.raises(CliError, match="is not valid") as err:
        load_config(config)
    assert err.value.code is Exit.USAGE

    config.write_text('[[account]]\naddress = "a@example.org"\nport = 993\n')
    assert load_config(config)["account"] == [{"address": "a@example.org", "port": 993}]


def test_state_file_written_atomically_and_damage_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    write_atomically(path, json.dumps({"version": 1, "accounts": {"k": {"a": 1}}}))
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]
    state = StateFile(path)
    state.load()
    assert state.accounts == {"k": {"a": 1}}

    path.write_text('{"version": 1, "accou')
    with pytest.raises(CliError, match="damaged") as err:
        StateFile(path).load()
    assert err.value.code is Exit.OTHER
