"""What differs between the Home Assistant releases Mail Relay runs on.

Applying new options means reloading the entry. Home Assistant 2025.8 and later
do that themselves for an ``OptionsFlowWithReload`` and warn about entries that
also have an update listener (it fires on reconfigure and reauth too, so those
reloaded twice). Older releases lack the class: there an update listener
reloads, but only when the options changed, so that reconfigure and reauth
(whose ``async_update_reload_and_abort`` reloads) still reload once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntry, OptionsFlow
from homeassistant.core import HomeAssistant

# True from Home Assistant 2025.8: options flows can reload the entry by themselves.
OPTIONS_FLOW_RELOADS = hasattr(config_entries, "OptionsFlowWithReload")

if TYPE_CHECKING:
    # Type-checked as the plain class, which every supported release has.
    ReloadingOptionsFlow = OptionsFlow
else:
    ReloadingOptionsFlow = getattr(config_entries, "OptionsFlowWithReload", OptionsFlow)


def async_reload_on_options_change(entry: ConfigEntry[Any]) -> None:
    """Before 2025.8, reload ``entry`` when (and only when) its options change.

    Call once per setup; the listener goes away when the entry unloads.
    """
    if OPTIONS_FLOW_RELOADS:
        return
    loaded_with: Mapping[str, Any] = dict(entry.options)

    async def _options_updated(hass: HomeAssistant, updated: ConfigEntry[Any]) -> None:
        if dict(updated.options) != loaded_with:
            await hass.config_entries.async_reload(updated.entry_id)

    entry.async_on_unload(entry.add_update_listener(_options_updated))


def local_media_path(hass: HomeAssistant, source: str, resolved: object) -> Path | None:
    """Return the file behind a resolved local media source, or None for other media.

    Newer releases say it (``PlayMedia.path``; 2026.10 has it, 2025.4 not);
    older ones resolve local media to ``/media/<folder id>/<path>``, which maps
    onto ``media_dirs``. The caller still applies the allow list to it.
    """
    path = getattr(resolved, "path", None)
    if isinstance(path, Path):
        return path
    domain, _, identifier = source.removeprefix("media-source://").partition("/")
    folder_id, _, location = identifier.partition("/")
    base = hass.config.media_dirs.get(folder_id)
    if (
        domain != "media_source"
        or base is None
        or not location
        or getattr(resolved, "url", None) != f"/media/{identifier}"
    ):
        return None
    return Path(base, location)
