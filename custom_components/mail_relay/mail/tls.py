"""TLS contexts: certificates verified unless the user turned it off."""

from __future__ import annotations

import os
import ssl
from functools import lru_cache


def create_ssl_context(*, verify: bool = True) -> ssl.SSLContext:
    """Return a client context; blocking the first time, run it in an executor.

    Uses the system trust store, which honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``,
    so a private CA can be trusted without disabling verification. Contexts are
    shared: each one holds the whole CA store (a few hundred KB), and fifty
    accounts need no fifty copies. Nothing may modify a returned context.
    """
    return _shared_context(
        verify, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    )


@lru_cache(maxsize=8)
def _shared_context(
    verify: bool, cert_file: str | None, cert_dir: str | None
) -> ssl.SSLContext:
    """Build one context per trust source (the environment is part of the key)."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# TLS records are at most 16 KiB; twice that keeps big downloads efficient.
IDLE_READ_BUFFER = 32 * 1024


def shrink_read_buffer(transport: object, size: int = IDLE_READ_BUFFER) -> bool:
    """Give an asyncio TLS connection a smaller read buffer; say if it worked.

    CPython's asyncio allocates 256 KiB per TLS connection (``SSLProtocol.max_size``)
    and keeps it for the connection's life: for a mailbox that idles in IMAP IDLE
    that is most of its memory. The attributes are private, so anything unexpected
    leaves the connection as it is.
    """
    protocol = getattr(transport, "_ssl_protocol", None)
    if protocol is None or not isinstance(
        getattr(protocol, "_ssl_buffer", None), bytearray
    ):
        return False
    protocol.max_size = size  # get_buffer() would grow it back to the class value
    protocol._ssl_buffer = bytearray(size)
    protocol._ssl_buffer_view = memoryview(protocol._ssl_buffer)
    return True
