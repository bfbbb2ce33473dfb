"""Fixtures of the mail core's tests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from custom_components.mail_relay.mail.tls import create_ssl_context


@pytest.fixture
async def tls_context(trust_test_cert: Any) -> Any:
    """A verifying context that trusts the test certificate (like a private CA)."""
    return await asyncio.to_thread(create_ssl_context)
