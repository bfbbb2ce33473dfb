"""The command's token file: private, atomic, and tolerant of what it finds."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from custom_components.mail_relay.mail.oauth.tokens import OAuthClient, TokenSet
from mail_relay_cli.errors import CliError, Exit
from mail_relay_cli.tokens import (
    SignIn,
    TokenFile,
    default_token_path,
    open_token_file,
    sign_in_key,
)

KEY = sign_in_key(" Ann@Example.org ", "https://id.example.org/token")
SIGN_IN = SignIn(
    OAuthClient("app", "app-secret"),
    TokenSet("access-1", "refresh-1", 1_900_000_000.0, "mail offline_access"),
)


def test_default_path_is_in_the_user_config_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_token_path() == tmp_path / "mail-relay" / "tokens.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert default_token_path() == Path.home() / ".config/mail-relay/tokens.json"


async def test_a_sign_in_is_written_privately_and_read_back(tmp_path) -> None:
    path = tmp_path / "conf" / "tokens.json"
    store = TokenFile(path)
    await store.load()
    assert store.get(KEY) is None
    await store.put(KEY, SIGN_IN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert KEY == "ann@example.org https://id.example.org/token"

    again = TokenFile(path)
    await again.load()
    assert again.get(KEY) == SIGN_IN
    # A rotation replaces the entry; nothing else is left in the directory.
    rotated = SignIn(SIGN_IN.client, TokenSet("access-2", "refresh-2", None))
    await again.put(KEY, rotated)
    third = TokenFile(path)
    await third.load()
    assert third.get(KEY) == rotated
    assert [p.name for p in path.parent.iterdir()] == ["tokens.json"]


async def test_a_readable_file_is_made_private(tmp_path, capsys) -> None:
    path = tmp_path / "tokens.json"
    store = TokenFile(path)
    await store.put(KEY, SIGN_IN)
    path.chmod(0o644)
    await TokenFile(path).load()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "readable by other users" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["not json", "[]", '{"sign_ins": 3}'])
async def test_a_broken_file_is_a_usage_error(tmp_path, content: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(CliError) as caught:
        await TokenFile(path).load()
    assert caught.value.code is Exit.USAGE
    assert str(path) in str(caught.value)


async def test_an_unusable_entry_means_sign_in_again(tmp_path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(
        json.dumps(
            {
                "sign_ins": {
                    KEY: {"client_id": "app", "tokens": {"access_token": 5}},
                    "other": "text",
                }
            }
        )
    )
    store = TokenFile(path)
    await store.load()
    assert store.get(KEY) is None
    assert store.get("other") is None


async def test_accounts_of_one_run_share_the_file(tmp_path) -> None:
    """Two accounts refreshing in turn: each write keeps the other's tokens."""
    path = tmp_path / "tokens.json"
    first = await open_token_file(path)
    second = await open_token_file(tmp_path / "." / "tokens.json")
    assert first is second
    other = sign_in_key("bob@example.org", "https://id.example.org/token")
    await first.put(KEY, SIGN_IN)
    await second.put(other, SIGN_IN)
    rotated = SignIn(SIGN_IN.client, TokenSet("access-2", "refresh-2", None))
    await first.put(KEY, rotated)
    fresh = TokenFile(path)
    await fresh.load()
    assert fresh.get(KEY) == rotated
    assert fresh.get(other) == SIGN_IN
