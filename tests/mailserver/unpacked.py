"""Debian packages unpacked by ``scripts/setup`` (never installed): Cyrus, Postfix.

``scripts/lib/unpacked-debs.sh`` puts them under
``/var/cache/mail-relay/pkgs-<codename>`` (``$MAIL_RELAY_PKGS`` overrides), one
folder per Debian release, so the host (Debian 12) and the testing root each
have their own. Programs run from there with the folder's libraries first.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from pathlib import Path


def _codename() -> str:
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            fields[key] = value.strip().strip('"')
    return fields.get("VERSION_CODENAME") or fields.get("ID") or "unknown"


@functools.cache
def packages_root() -> Path:
    """Return the folder the packages were unpacked into (it may not exist)."""
    base = (
        os.environ.get("MAIL_RELAY_PKGS") or f"/var/cache/mail-relay/pkgs-{_codename()}"
    )
    return Path(base) / "root"


def program(path: str) -> Path:
    """Return an unpacked program's path (``usr/lib/cyrus/bin/master``)."""
    return packages_root() / path


def environment() -> dict[str, str]:
    """The environment to run unpacked programs in: their libraries first."""
    root = packages_root()
    arch = f"{platform.machine()}-linux-gnu"
    libs = [
        root / "usr/lib" / arch,
        root / "lib" / arch,
        root / "usr/lib",
        root / "usr/lib/postfix",  # Postfix's own libraries (their RUNPATH)
    ]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(
        [*(str(p) for p in libs), *filter(None, [env.get("LD_LIBRARY_PATH")])]
    )
    # SASL plugins: the unpacked ones where this system lacks some (the
    # testing root has the sasldb plugin but not PLAIN and LOGIN), then the
    # system's. libsasl2 reads a colon-separated list.
    plugins = root / "usr/lib" / arch / "sasl2"
    if plugins.is_dir():
        env["SASL_PATH"] = f"{plugins}:/usr/lib/{arch}/sasl2"
    return env
