"""scripts/develop's configuration and its demo ISP database agree.

The wizard finds the demo account from its address only if
``config/configuration.yaml`` points ``mail_relay: ispdb_url:`` at the ISPDB the
demo server serves, and that ISPDB names the demo server's fixed ports.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from custom_components.mail_relay.mail.autoconfig import parse_config_xml
from custom_components.mail_relay.mail.models import Protocol, Security
from tests.mailserver.demo import (
    DEMO_ISPDB_URL,
    DEMO_PORTS,
    DEMO_SMTP_PORTS,
    demo_config_xml,
    start_ispdb,
)

CONFIG = Path(__file__).resolve().parents[1] / "config" / "configuration.yaml"
ADDRESS = "demo@mailrelay.test"


class _HassLoader(yaml.SafeLoader):
    """Reads Home Assistant's tags without following them."""


_HassLoader.add_constructor("!include", lambda loader, node: f"!include {node.value}")


def _develop_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.load(CONFIG.read_text(), _HassLoader)
    return config


def test_configuration_asks_the_demo_ispdb_and_loads_the_ui_editors_files() -> None:
    config = _develop_config()
    assert config["mail_relay"]["ispdb_url"] == DEMO_ISPDB_URL
    assert config["automation"] == "!include automations.yaml"
    assert config["script"] == "!include scripts.yaml"
    assert config["scene"] == "!include scenes.yaml"


def test_the_demo_ispdb_serves_the_demo_servers() -> None:
    server = start_ispdb({"/v1.1/mailrelay.test": demo_config_xml()}, port=0)
    try:
        port = server.server_address[1]
        base = f"http://127.0.0.1:{port}/v1.1/"
        with urllib.request.urlopen(base + "mailrelay.test", timeout=5) as answer:
            found = parse_config_xml(answer.read(), ADDRESS)
        with pytest.raises(urllib.error.HTTPError) as unknown:
            urllib.request.urlopen(base + "example.org", timeout=5)
        assert unknown.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
    assert found is not None
    imap = found.incoming(Protocol.IMAP)
    pop3 = found.incoming(Protocol.POP3)
    smtp = found.outgoing
    assert imap is not None
    assert pop3 is not None
    assert smtp is not None
    assert (imap.host, imap.port, imap.security) == (
        "127.0.0.1",
        DEMO_PORTS["imaps"],
        Security.SSL,
    )
    assert (pop3.port, pop3.security) == (DEMO_PORTS["pop3s"], Security.SSL)
    assert (smtp.port, smtp.security) == (
        DEMO_SMTP_PORTS["starttls"],
        Security.STARTTLS,
    )
    assert imap.username == smtp.username == ADDRESS
