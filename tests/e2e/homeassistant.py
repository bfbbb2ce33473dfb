"""A real Home Assistant process for browser tests, and a static ISPDB beside it.

Home Assistant runs as ``hass -c <temp dir> --skip-pip`` with a minimal
configuration (the frontend and what its pages need), Mail Relay on its path
through PYTHONPATH, and the test mail certificate trusted through
SSL_CERT_FILE, the way ``scripts/develop`` runs it. Onboarding goes through the
onboarding API, as the frontend's own onboarding pages do.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.mailserver.ports import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
HASS = Path(sys.executable).with_name("hass")

OWNER_NAME = "Camille"
OWNER_USERNAME = "camille"
OWNER_PASSWORD = "mail-relay-e2e"  # a throwaway test account

CONFIGURATION = """\
# Written by tests/e2e: the frontend and the pages it needs, nothing that
# wants packages or the Internet (default_config would).
homeassistant:
  name: Home
  country: FR
  time_zone: Europe/Paris
  unit_system: metric
  currency: EUR
  latitude: 48.8566
  longitude: 2.3522
  elevation: 35

frontend:
# The automation editor saves to automations.yaml (written empty below).
automation: !include automations.yaml
{http}
# Mail Relay asks this ISP database instead of Mozilla's (README, Setup).
mail_relay:
  ispdb_url: {ispdb_url}
{mail_relay}
logger:
  default: warning
  logs:
    custom_components.mail_relay: debug
"""

# The location and units are set in the YAML above; marking this step done up
# front keeps onboarding from adding its weather, radio and TTS integrations,
# which want packages and the Internet this test does not have.
ONBOARDING_STORE = {
    "version": 4,
    "minor_version": 1,
    "key": "onboarding",
    "data": {"done": ["core_config"]},
}


# Since 2026.10 the HTTP settings live in storage and YAML's `http:` is migrated
# once, as a trial the frontend asks the owner to confirm; older releases read
# only the YAML.
HTTP_IN_STORAGE = importlib.util.find_spec("homeassistant.components.http.config")


def http_settings(port: int) -> tuple[str, dict[str, Any] | None]:
    """Return the YAML `http:` block and the `.storage/http` store for ``port``."""
    if HTTP_IN_STORAGE is None:
        return f"http:\n  server_host: 127.0.0.1\n  server_port: {port}\n", None
    from homeassistant.components.http.config import (
        HTTP_STORAGE_SCHEMA,
    )

    # Home Assistant's own schema fills in every other setting's default.
    settings = HTTP_STORAGE_SCHEMA({"server_host": ["127.0.0.1"], "server_port": port})
    store = {
        "version": 2,
        "minor_version": 2,
        "key": "http",
        "data": {"stable": settings, "pending": None, "yaml_migration_done": True},
    }
    return "", store


def child_environment(**extra: str) -> dict[str, str]:
    """Return the environment for a child process, without pytest-cov's hooks.

    pytest-cov starts coverage in every Python child that inherits its
    COV_CORE_* variables; Home Assistant and the web server are the system
    under test here, not code measured by this run.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV_CORE_")}
    return env | extra


# The stack of the upstream frontend race that errors_in_log leaves out.
_ADD_DIALOG_RACE = ("reading 'domain'", "dialog-add-integration.ts")


class StaticIspdb:
    """An ISP database as an organisation would host it: files on a web server.

    Files live under ``<root>/v1.1/<domain>`` and ``python -m http.server``
    serves them from 127.0.0.1.
    """

    def __init__(self, root: Path) -> None:
        """Prepare the directory; ``start()`` serves it."""
        self.root = root
        (root / "v1.1").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the base URL Mail Relay's ``ispdb_url`` takes."""
        return f"http://127.0.0.1:{self.port}/v1.1/"

    def publish(self, domain: str, xml: str) -> None:
        """Serve ``xml`` as the config-v1.1.xml of ``domain``."""
        (self.root / "v1.1" / domain).write_text(xml)

    def start(self) -> None:
        """Serve the files until ``stop()``."""
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                str(self.root),
                str(self.port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=child_environment(),
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        """Stop the web server."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@dataclass
class HomeAssistantProcess:
    """``hass -c <config_dir>`` on a free loopback port."""

    config_dir: Path
    ispdb_url: str
    cert_file: Path
    port: int = field(default_factory=free_port)
    # More of configuration.yaml's ``mail_relay:`` (indented YAML lines).
    mail_relay_yaml: str = ""
    access_token: str = ""
    _process: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def url(self) -> str:
        """Return the address the browser opens."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """Return where Home Assistant's console output goes."""
        return self.config_dir / "hass-console.log"

    def write_config(self) -> None:
        """Write configuration.yaml and the pre-marked onboarding step."""
        storage = self.config_dir / ".storage"
        storage.mkdir(parents=True, exist_ok=True)
        http_yaml, http_store = http_settings(self.port)
        (self.config_dir / "configuration.yaml").write_text(
            CONFIGURATION.format(
                http=http_yaml,
                ispdb_url=self.ispdb_url,
                mail_relay=self.mail_relay_yaml,
            )
        )
        automations = self.config_dir / "automations.yaml"
        if not automations.exists():
            automations.write_text("[]\n")
        (storage / "onboarding").write_text(json.dumps(ONBOARDING_STORE))
        if http_store is not None:
            (storage / "http").write_text(json.dumps(http_store))

    def start(self, timeout: float = 90.0) -> None:
        """Start Home Assistant and wait until its HTTP API answers."""
        if not HASS.exists():
            raise RuntimeError(f"{HASS} is missing: run scripts/setup")
        self.write_config()
        env = child_environment(
            # Mail Relay from this checkout, as scripts/develop does.
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
            ),
            # The test mail servers' certificate, trusted like a private CA.
            SSL_CERT_FILE=str(self.cert_file),
        )
        self._log = self.log_file.open("wb")
        self._process = subprocess.Popen(
            [str(HASS), "-c", str(self.config_dir), "--skip-pip"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.config_dir,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"Home Assistant exited with {self._process.returncode}:\n"
                    + self.log_tail()
                )
            try:
                self.request("GET", "/api/onboarding", auth=False)
                return
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "Home Assistant did not answer in time:\n" + self.log_tail()
                    ) from None
                time.sleep(0.25)

    def stop(self) -> None:
        """Stop Home Assistant the way a service manager does (SIGTERM)."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 60) -> str:
        """Return the end of Home Assistant's output, for failure messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def errors_in_log(self) -> list[str]:
        """Return the ERROR lines Mail Relay or the frontend wrote.

        One frontend error is left out: 2025.4's "Add integration" dialog
        sometimes throws while its list re-renders under typing
        (``dialog-add-integration.ts`` reading ``domain`` of an undefined
        item), a race of its own, whatever the integration.
        """
        lines = self.log_file.read_text(errors="replace").splitlines()
        errors = []
        for i, line in enumerate(lines):
            if " ERROR " not in line or not (
                "mail_relay" in line or "frontend" in line or "config_entries" in line
            ):
                continue
            details = "\n".join(lines[i + 1 : i + 4])
            if "frontend" in line and all(s in details for s in _ADD_DIALOG_RACE):
                continue
            errors.append(line)
        return errors

    # -- HTTP ------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        data: dict[str, Any] | None = None,
        *,
        auth: bool = True,
        form: bool = False,
    ) -> Any:
        """Call Home Assistant's HTTP API and decode the JSON answer."""
        headers: dict[str, str] = {}
        body: bytes | None = None
        if data is not None:
            if form:
                body = urllib.parse.urlencode(data).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                body = json.dumps(data).encode()
                headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.access_token}"
        req = urllib.request.Request(  # http://127.0.0.1 only
            self.url + path, data=body, headers=headers, method=method
        )
        with urllib.request.urlopen(req, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def onboard(self) -> None:
        """Create the owner and finish onboarding, as the onboarding pages do."""
        client_id = self.url + "/"
        answer = self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": client_id,
                "name": OWNER_NAME,
                "username": OWNER_USERNAME,
                "password": OWNER_PASSWORD,
                "language": "en",
            },
            auth=False,
        )
        tokens = self.request(
            "POST",
            "/auth/token",
            {
                "grant_type": "authorization_code",
                "code": answer["auth_code"],
                "client_id": client_id,
            },
            auth=False,
            form=True,
        )
        self.access_token = tokens["access_token"]
        self.request("POST", "/api/onboarding/analytics", {})
        self.request(
            "POST",
            "/api/onboarding/integration",
            {"client_id": client_id, "redirect_uri": client_id + "?auth_callback=1"},
        )
        steps = self.request("GET", "/api/onboarding", auth=False)
        if not all(step["done"] for step in steps):
            raise RuntimeError(f"onboarding not finished: {steps}")

    def states(self) -> dict[str, dict[str, Any]]:
        """Return every entity's state, by entity id."""
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def config_entries(self) -> list[dict[str, Any]]:
        """Return the Mail Relay config entries."""
        return list(
            self.request("GET", "/api/config/config_entries/entry?domain=mail_relay")
        )
