"""A small aiohttp server on 127.0.0.1 serving autoconfig files by path.

It runs in the test's event loop (no thread), records every request, and can
delay or fail answers, so detection order and deadlines can be tested.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class ConfigHttpServer:
    """Serve ``files`` ({path: xml text}); other paths answer 404."""

    files: dict[str, str] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    _runner: web.AppRunner | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if delay := self.delays.get(request.path):
            # Stopping the server ends pending delays, so no handler lingers.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        body = self.files.get(request.path)
        if body is None:
            return web.Response(status=404, text="not found")
        return web.Response(text=body, content_type="text/xml")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ConfigHttpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def config_xml(
    *,
    domain: str = "example.org",
    imap: tuple[str, int, str] | None = ("imap.example.org", 993, "SSL"),
    pop3: tuple[str, int, str] | None = None,
    smtp: tuple[str, int, str] | None = ("smtp.example.org", 465, "SSL"),
    username: str = "%EMAILADDRESS%",
    name: str = "Example Mail",
) -> str:
    """Write a config-v1.1.xml the way providers publish it."""

    def server(tag: str, kind: str, spec: tuple[str, int, str]) -> str:
        host, port, socket_type = spec
        return (
            f'<{tag} type="{kind}"><hostname>{host}</hostname><port>{port}</port>'
            f"<socketType>{socket_type}</socketType><username>{username}</username>"
            f"<authentication>password-cleartext</authentication></{tag}>"
        )

    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<clientConfig version="1.1">',
        f'<emailProvider id="{domain}"><domain>{domain}</domain>',
        f"<displayName>{name}</displayName>",
    ]
    if imap:
        parts.append(server("incomingServer", "imap", imap))
    if pop3:
        parts.append(server("incomingServer", "pop3", pop3))
    if smtp:
        parts.append(server("outgoingServer", "smtp", smtp))
    parts.append("</emailProvider></clientConfig>")
    return "\n".join(parts)
