"""Files the integration reads or writes: the allow list, the size rule, media sources.

One rule for every file: a path must be inside ``allowlist_external_dirs``
(``hass.config.is_allowed_path``; Home Assistant adds the media folders to it),
and no file is larger than ``MAX_ATTACHMENT_BYTES``. ``send_mail`` reads its
attachments here, ``save_attachments`` checks its target folder here. A media
source (``media-source://...``, the Media selector) is resolved through Home
Assistant's media source API: local media is read as a file under the same
rule, other media is downloaded with the same cap.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import aiohttp
from homeassistant.components import media_source
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .compat import local_media_path
from .const import DOMAIN
from .mail.bounds import MAX_ATTACHMENT_BYTES
from .mail.compose import OutgoingAttachment

MEDIA_SOURCE_PREFIX = "media-source://"
# Seconds for one media download (a camera snapshot, a TTS file).
MEDIA_DOWNLOAD_TIMEOUT = 60
_DOWNLOAD_CHUNK = 64 * 1024


class _NotRegularFileError(OSError):
    """A path that is no regular file (FIFO, device, socket)."""


# Why a file could not be read, the most precise first, as translation keys.
_FILE_ERRORS: tuple[tuple[type[OSError], str], ...] = (
    (_NotRegularFileError, "file_not_regular"),
    (FileNotFoundError, "file_not_found"),
    (OSError, "file_unreadable"),
)


def require_allowed_path(hass: HomeAssistant, path_text: str) -> None:
    """Refuse a path outside ``allowlist_external_dirs`` with the translated error."""
    if not hass.config.is_allowed_path(path_text):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="path_not_allowed",
            translation_placeholders={"path": path_text},
        )


def too_large_error(limit: int = MAX_ATTACHMENT_BYTES) -> ServiceValidationError:
    """Return the translated error for files over the size rule."""
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="attachments_too_large",
        translation_placeholders={"limit": f"{limit / (1024 * 1024):g}"},
    )


def file_error(err: OSError, path_text: str) -> ServiceValidationError:
    """Return the most precise translated error for a file that failed."""
    key = next(k for kind, k in _FILE_ERRORS if isinstance(err, kind))
    placeholders = {"path": path_text}
    if key == "file_unreadable":
        placeholders["error"] = str(err)
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders,
    )


def _read_bounded(path: Path, limit: int) -> bytes | None:
    """Read a regular file, at most ``limit`` bytes; None if it holds more.

    Opened without blocking and checked on the open descriptor, so a FIFO or
    a device is refused instead of holding an executor thread, and a file
    that grows between the check and the read still cannot pass the limit
    (its size is what is read, not what ``stat`` said).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegularFileError(str(path))
        content = handle.read(limit + 1)
    return None if len(content) > limit else content


def read_allowed_file(
    hass: HomeAssistant, path_text: str, limit: int
) -> OutgoingAttachment:
    """Read one allowed file of at most ``limit`` bytes; runs in the executor."""
    require_allowed_path(hass, path_text)
    path = Path(path_text)
    try:
        content = _read_bounded(path, limit)
    except OSError as err:
        raise file_error(err, path_text) from err
    if content is None:
        raise too_large_error()
    return OutgoingAttachment(path.name, content)


def is_media_source(source: str) -> bool:
    """Whether an attachment names a media source rather than a path."""
    return source.startswith(MEDIA_SOURCE_PREFIX)


async def async_read_attachments(
    hass: HomeAssistant, sources: Sequence[str], limit: int = MAX_ATTACHMENT_BYTES
) -> list[OutgoingAttachment]:
    """Read paths and media sources, in order, ``limit`` bytes in all."""
    out: list[OutgoingAttachment] = []
    for source in sources:
        left = limit - sum(len(a.content) for a in out)
        if is_media_source(source):
            out.append(await _async_read_media(hass, source, left))
        else:
            out.append(
                await hass.async_add_executor_job(read_allowed_file, hass, source, left)
            )
    return out


def _media_error(source: str, error: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="media_unresolvable",
        translation_placeholders={"source": source, "error": error},
    )


async def _async_read_media(
    hass: HomeAssistant, source: str, limit: int
) -> OutgoingAttachment:
    """Resolve a media source; read local media as a file, download the rest."""
    try:
        resolved = await media_source.async_resolve_media(hass, source, None)
    except HomeAssistantError as err:  # Unresolvable, and "not loaded"
        raise _media_error(source, str(err)) from err
    path = local_media_path(hass, source, resolved)
    if path is not None:
        attachment = await hass.async_add_executor_job(
            read_allowed_file, hass, str(path), limit
        )
        return OutgoingAttachment(
            attachment.filename, attachment.content, resolved.mime_type
        )
    return await _async_download(hass, source, resolved, limit)


async def _async_download(
    hass: HomeAssistant, source: str, resolved: media_source.PlayMedia, limit: int
) -> OutgoingAttachment:
    """Download non-local media (a camera, TTS) with the size rule as it streams."""
    # Imported here: the media player component is large and only this needs it.
    from homeassistant.components.media_player.browse_media import (
        async_process_play_media_url,
    )

    url = async_process_play_media_url(hass, resolved.url)
    session = async_get_clientsession(hass)
    content = bytearray()
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=MEDIA_DOWNLOAD_TIMEOUT)
        ) as response:
            response.raise_for_status()
            async for chunk in response.content.iter_chunked(_DOWNLOAD_CHUNK):
                content += chunk
                if len(content) > limit:
                    raise too_large_error()
    except (aiohttp.ClientError, TimeoutError) as err:
        raise _media_error(source, str(err) or type(err).__name__) from err
    name = unquote(PurePosixPath(source.removeprefix(MEDIA_SOURCE_PREFIX)).name)
    return OutgoingAttachment(name or "media", bytes(content), resolved.mime_type)
