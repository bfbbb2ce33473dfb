"""Build the core's option objects from the flat keywords tests read best."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from custom_components.mail_relay.mail.backoff import Backoff
from custom_components.mail_relay.mail.options import (
    EventOptions,
    ImapWatchOptions,
    Pop3PollOptions,
    Timeouts,
)


def _take(kind: type[Any], flat: dict[str, Any]) -> Any:
    names = {f.name for f in fields(kind)}
    return kind(**{k: flat.pop(k) for k in list(flat) if k in names})


def with_options(
    protocol: type[ImapWatchOptions] | type[Pop3PollOptions], flat: dict[str, Any]
) -> dict[str, Any]:
    """Turn ``text_limit=``, ``push=``, ``timeout=``, ... into option objects.

    ``timeout`` is ``Timeouts.io``; ``backoff_initial``/``backoff_max`` build
    ``Timeouts.reconnect``. Other keywords pass through unchanged.
    """
    rest = dict(flat)
    reconnect = Backoff(
        initial=rest.pop("backoff_initial", Backoff.initial),
        maximum=rest.pop("backoff_max", Backoff.maximum),
    )
    timeouts = Timeouts(io=rest.pop("timeout", Timeouts().io), reconnect=reconnect)
    options = _take(protocol, rest)
    event = _take(EventOptions, rest)
    return {"options": options, "event": event, "timeouts": timeouts, **rest}
