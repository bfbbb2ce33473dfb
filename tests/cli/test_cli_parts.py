"""Parts of the CLI that need no server: masking, config files, the state file."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from mail_relay_cli.config import load_config
from mail_relay_cli.errors import CliError, Exit
from mail_relay_cli.state import StateFile, write_atomically
from mail_relay_cli.wire import Masker


def test_masker_hides_the_password_in_every_form_it_travels_in() -> None:
    masker = Masker()
    masker.add("jean@example.org", 'p@ss "word"\\1')
    plain = base64.b64encode(b'\0jean@example.org\0p@ss "word"\\1').decode()

    assert (
        masker.line("imap", "C", 'A1 LOGIN "jean@example.org" "p@ss \\"word\\"\\\\1"')
        == 'A1 LOGIN "jean@example.org" ****'
    )
    assert masker.line("pop3", "C", 'PASS p@ss "word"\\1') == "PASS ****"
    assert masker.line("smtp", "C", f"AUTH PLAIN {plain}") == "AUTH PLAIN ****"
    assert masker.line("smtp", "S", "535 5.7.8 no") == "535 5.7.8 no"
    # AUTH LOGIN: every answer to the server's challenges is hidden...
    assert masker.line("smtp", "C", "AUTH LOGIN") == "AUTH LOGIN"
    assert masker.line("smtp", "S", "334 VXNlcm5hbWU6") == "334 VXNlcm5hbWU6"
    assert masker.line("smtp", "C", "amVhbkBleGFtcGxlLm9yZw==") == "****"
    assert masker.line("smtp", "S", "334 UGFzc3dvcmQ6") == "334 UGFzc3dvcmQ6"
    assert masker.line("smtp", "C", "cEBzcyAid29yZCJcMQ==") == "****"
    # ...until the server answers something else.
    assert masker.line("smtp", "S", "235 2.7.0 ok") == "235 2.7.0 ok"
    assert masker.line("smtp", "C", "MAIL FROM:<jean@example.org>") == (
        "MAIL FROM:<jean@example.org>"
    )
    # IDLE's "+ idling" is no login: DONE stays visible.
    assert masker.line("imap", "S", "+ idling") == "+ idling"
    assert masker.line("imap", "C", "DONE") == "DONE"
    # Anywhere else, the secret and its base64 forms are replaced.
    assert masker.scrub(f'x p@ss "word"\\1 y {plain}') == "x **** y ****"


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
