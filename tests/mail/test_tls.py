"""TLS contexts are verified by default and shared per trust source."""

from __future__ import annotations

import ssl

import pytest

from custom_components.mail_relay.mail.tls import create_ssl_context


def test_verifies_by_default_and_is_shared() -> None:
    ctx = create_ssl_context()
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.check_hostname
    # Fifty accounts share one CA store instead of holding fifty copies.
    assert create_ssl_context() is ctx


def test_unverified_only_on_request() -> None:
    ctx = create_ssl_context(verify=False)
    assert ctx.verify_mode is ssl.CERT_NONE
    assert create_ssl_context(verify=True) is not ctx


def test_trust_source_change_gives_a_new_context(
    monkeypatch: pytest.MonkeyPatch, mail_cert
) -> None:
    before = create_ssl_context()
    monkeypatch.setenv("SSL_CERT_FILE", str(mail_cert.cert))
    trusting = create_ssl_context()
    assert trusting is not before
    assert any(
        c["subject"] == ((("commonName", "localhost"),),)
        for c in trusting.get_ca_certs()
    )
