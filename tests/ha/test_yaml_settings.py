"""configuration.yaml's ``mail_relay: ispdb_url:`` points autodetection at an own ISPDB."""

from __future__ import annotations

import pytest
from homeassistant import config_entries
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component

from custom_components.mail_relay import config_flow
from custom_components.mail_relay.const import CONF_EMAIL, CONF_PROTOCOL, DOMAIN
from tests.mailserver.http import ConfigHttpServer, config_xml


async def test_yaml_ispdb_url_reaches_autodetection(hass: HomeAssistant) -> None:
    async with ConfigHttpServer() as ispdb:
        ispdb.files["/v1.1/own-isp.test"] = config_xml(
            domain="own-isp.test",
            imap=("imap.own-isp.test", 993, "SSL"),
            smtp=("smtp.own-isp.test", 587, "STARTTLS"),
        )
        url = f"{ispdb.base}/v1.1/"
        assert await async_setup_component(hass, DOMAIN, {DOMAIN: {"ispdb_url": url}})
        assert config_flow.autoconfig_settings(hass).ispdb_url == url

        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {
                CONF_EMAIL: "ana@own-isp.test",
                CONF_PASSWORD: "pw",
                CONF_PROTOCOL: "imap",
            },
        )
        hass.config_entries.flow.async_abort(result["flow_id"])
    assert "/v1.1/own-isp.test" in ispdb.requests
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"
    placeholders = result["description_placeholders"]
    assert (
        placeholders["incoming"] == "imap.own-isp.test:993, SSL/TLS, ana@own-isp.test"
    )
    assert placeholders["source"] == "Mozilla's ISP database"


@pytest.mark.parametrize("yaml", [None, {}])
async def test_without_the_setting_the_public_ispdb_is_used(
    hass: HomeAssistant, yaml: dict[str, str] | None
) -> None:
    assert await async_setup_component(hass, DOMAIN, {DOMAIN: yaml})
    settings = config_flow.autoconfig_settings(hass)
    assert settings.ispdb_url == "https://autoconfig.thunderbird.net/v1.1/"


async def test_a_bad_ispdb_url_is_refused(hass: HomeAssistant) -> None:
    assert not await async_setup_component(
        hass, DOMAIN, {DOMAIN: {"ispdb_url": "not a url"}}
    )
