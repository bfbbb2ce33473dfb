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
