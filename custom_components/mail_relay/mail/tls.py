"""TLS contexts: certificates verified unless the user turned it off."""

from __future__ import annotations

import ssl


def create_ssl_context(*, verify: bool = True) -> ssl.SSLContext:
    """Build a client context; blocking (reads the trust store), run in an executor.

    Uses the system trust store, which honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``,
    so a private CA can be trusted without disabling verification.
    """
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
