"""``send_mail`` attaching media sources, resolved through Home Assistant's media source API.

Run in both legs: Home Assistant 2025.4 resolves local media to a URL only,
newer releases also give its path (compat.local_media_path).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.mail_relay.const import DOMAIN
from custom_components.mail_relay.mail.bounds import MAX_ATTACHMENT_BYTES
from tests.mailserver import MailUser, SmtpServer

pytestmark = pytest.mark.usefixtures("trust_test_cert")

REPORT = b"%PDF-1.4\n" + os.urandom(2000) + b"\n%%EOF\n"
SNAPSHOT = b"\xff\xd8\xff\xe0" + os.urandom(1500) + b"\xff\xd9"


@pytest.fixture
async def media(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Home Assistant's media folder ("My media"), with the media source loaded."""
    folder = tmp_path / "media"
    (folder / "rapports").mkdir(parents=True)
    hass.config.media_dirs = {"local": str(folder)}
    hass.config.allowlist_external_dirs = {str(folder)}
    assert await async_setup_component(hass, "media_source", {})
    return folder


async def _entry(
    hass: HomeAssistant, factory: Callable[..., MockConfigEntry], user: MailUser
) -> MockConfigEntry:
    entry = factory(user)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry


async def _send(hass: HomeAssistant, data: dict[str, Any]) -> None:
    await hass.services.async_call(DOMAIN, "send_mail", data, blocking=True)


async def test_media_source_attachments_are_delivered(
    hass: HomeAssistant,
    mail_user: MailUser,
    smtp_server: SmtpServer,
    entry_factory: Callable[..., MockConfigEntry],
    media: Path,
) -> None:
    (media / "rapports" / "relevé de mars.pdf").write_bytes(REPORT)
    (media / "porte.jpg").write_bytes(SNAPSHOT)
    entry = await _entry(hass, entry_factory, mail_user)
    await _send(
        hass,
        {
            "config_entry_id": entry.entry_id,
            "to": ["media@example.org"],
            "subject": "Médias",
            "html": '<p>La porte</p><img src="cid:porte.jpg">',
            # As the Media selector gives it, and as typed in YAML.
            "media": [
                {
                    "media_content_id": "media-source://media_source/local/rapports/relevé de mars.pdf",
                    "media_content_type": "application/pdf",
                }
            ],
            "images": ["media-source://media_source/local/porte.jpg"],
        },
    )
    [received] = smtp_server.received_by("media@example.org")
    msg = received.parsed()
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "relevé de mars.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == REPORT
    image = next(p for p in msg.walk() if p.get_content_type() == "image/jpeg")
    assert image["Content-ID"] == "<porte.jpg>"
    assert image.get_content() == SNAPSHOT
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_media_source_errors_are_clear(
    hass: HomeAssistant,
    mail_user: MailUser,
    smtp_server: SmtpServer,
    entry_factory: Callable[..., MockConfigEntry],
    media: Path,
) -> None:
    big = media / "big.pdf"
    with big.open("wb") as handle:
        handle.truncate(MAX_ATTACHMENT_BYTES + 1)
    entry = await _entry(hass, entry_factory, mail_user)
    cases = {
        "media_unresolvable": "media-source://media_source/elsewhere/x.pdf",
        "file_not_found": "media-source://media_source/local/missing.pdf",
        "attachments_too_large": "media-source://media_source/local/big.pdf",
    }
    for key, source in cases.items():
        with pytest.raises(ServiceValidationError) as caught:
            await _send(
                hass,
                {
                    "config_entry_id": entry.entry_id,
                    "to": [f"{key}@example.org"],
                    "text": "x",
                    "attachments": [source],
                },
            )
        assert caught.value.translation_key == key, source
        assert smtp_server.received_by(f"{key}@example.org") == []
    # Not a media source where one is expected: refused by the schema.
    with pytest.raises(Exception, match="media source"):
        await _send(
            hass,
            {
                "config_entry_id": entry.entry_id,
                "to": ["x@example.org"],
                "media": ["/etc/passwd"],
            },
        )
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
async def web_media() -> Any:
    """A real HTTP server on 127.0.0.1: a snapshot, and a stream that never ends."""
    from aiohttp import web

    async def snapshot(_request: web.Request) -> web.Response:
        return web.Response(body=SNAPSHOT, content_type="image/jpeg")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"\xff" * 65536
        with contextlib.suppress(ConnectionError):
            while True:  # an MJPEG camera stream: the cap must end it
                await response.write(chunk)
        return response

    app = web.Application()
    app.router.add_get("/snapshot.jpg", snapshot)
    app.router.add_get("/stream", endless)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_other_media_is_downloaded_with_the_cap(
    hass: HomeAssistant, web_media: str
) -> None:
    """Media that is no local file (a camera, TTS) comes over HTTP, bounded."""
    from homeassistant.components.media_source import PlayMedia

    from custom_components.mail_relay import files

    got = await files._async_download(
        hass,
        "media-source://camera/camera.porte",
        PlayMedia(f"{web_media}/snapshot.jpg", "image/jpeg"),
        MAX_ATTACHMENT_BYTES,
    )
    assert (got.filename, got.content, got.mime_type) == (
        "camera.porte",
        SNAPSHOT,
        "image/jpeg",
    )
    with pytest.raises(ServiceValidationError) as caught:
        await files._async_download(
            hass,
            "media-source://camera/camera.flux",
            PlayMedia(f"{web_media}/stream", "multipart/x-mixed-replace"),
            1024 * 1024,
        )
    assert caught.value.translation_key == "attachments_too_large"
    with pytest.raises(ServiceValidationError) as caught:
        await files._async_download(
            hass,
            "media-source://camera/camera.absente",
            PlayMedia(f"{web_media}/missing.jpg", "image/jpeg"),
            1024 * 1024,
        )
    assert caught.value.translation_key == "media_unresolvable"
    assert "404" in caught.value.translation_placeholders["error"]
