"""The guards against deprecated uses: pyproject's warning filters, tests/deprecations.py."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import frame
from homeassistant.setup import async_setup_component

from custom_components.mail_relay.const import DOMAIN
from tests.deprecations import deprecation_reports

ROOT = Path(__file__).parents[1]


def _record(name: str, message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


# Home Assistant 2026's own wording, from its frame and deprecation helpers.
REPORTED = [
    _record(
        "homeassistant.helpers.frame",
        "Detected that custom integration 'mail_relay' has an update listener and "
        "should use it for scheduling a reload at "
        "custom_components/mail_relay/config_flow.py, line 290: return "
        "self.async_update_reload_and_abort(entry, data=data). This will stop "
        "working in Home Assistant 2026.12.0, please report it to the author of "
        "the 'mail_relay' custom integration",
    ),
    _record(
        "homeassistant.data_entry_flow",
        "The deprecated function show_advanced_options was called from mail_relay. "
        "It will be removed in HA Core 2027.6. Use a user friendly way to present "
        "additional options in the UI, for example a section instead, please "
        "report it to the author of the 'mail_relay' custom integration",
    ),
    _record(
        "homeassistant.helpers.frame",
        "Detected that custom integration 'mail_relay' calls "
        "`device_registry.async_get_device`, which is deprecated because device "
        "identifiers and connections are no longer unique across config entries",
        logging.ERROR,
    ),
]
NOT_OURS = [
    # About mail_relay, but no deprecation.
    _record(
        "homeassistant.loader",
        "We found a custom integration mail_relay which has not been tested by "
        "Home Assistant. This component might cause stability problems",
    ),
    # A deprecation, someone else's.
    _record(
        "homeassistant.helpers.frame",
        "Detected that custom integration 'other' uses a deprecated thing",
    ),
    # Ours, but below WARNING.
    _record(
        "custom_components.mail_relay.coordinator",
        "deprecated option ignored",
        logging.INFO,
    ),
]


def test_reports_of_a_deprecated_use_are_recognised() -> None:
    assert len(deprecation_reports(REPORTED)) == len(REPORTED)
    assert deprecation_reports(NOT_OURS) == []


@pytest.mark.deprecated_use_expected
async def test_a_real_home_assistant_report_is_recognised(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    assert await async_setup_component(hass, DOMAIN, {})
    frame.report_usage(
        "uses something deprecated",
        breaks_in_ha_version="2099.1.0",
        integration_domain=DOMAIN,
    )
    [found] = deprecation_reports(caplog.records)
    assert "Detected that custom integration 'mail_relay' uses something" in found


def _library_call() -> None:
    warnings.warn("old API", DeprecationWarning, stacklevel=2)


def _call_from(module: str) -> None:
    """Call the 'library' from code whose module is ``module``."""
    code = compile("_library_call()", module.replace(".", "/") + ".py", "exec")
    exec(code, {"__name__": module, "_library_call": _library_call})


def test_a_deprecation_warned_about_our_code_is_an_error() -> None:
    # pyproject's filterwarnings: the warning points at its caller, our code.
    with pytest.raises(DeprecationWarning, match="old API"):
        _call_from("custom_components.mail_relay.mail.dns")
    with pytest.raises(DeprecationWarning, match="old API"):
        _call_from("mail_relay_cli")
    # The same warning about someone else's code stays a warning.
    with pytest.warns(DeprecationWarning, match="old API"):
        _call_from("some_library.module")


def test_the_check_fails_a_passing_test_and_keeps_a_genuine_failure(
    tmp_path: Path,
) -> None:
    """Run tests/deprecations.py in a bare pytest (no Home Assistant plugin)."""
    (tmp_path / "conftest.py").write_text(
        "from tests.deprecations import no_deprecated_use, pytest_runtest_makereport\n"
    )
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import logging

            import pytest

            REPORT = (
                "Detected that custom integration 'mail_relay' has an update "
                "listener. This will stop working in Home Assistant 2026.12.0"
            )

            def test_passes_but_reports():
                logging.getLogger("homeassistant.helpers.frame").warning(REPORT)

            def test_fails_and_reports():
                logging.getLogger("homeassistant.helpers.frame").warning(REPORT)
                assert False, "the genuine failure"

            @pytest.mark.deprecated_use_expected
            def test_reports_on_purpose():
                logging.getLogger("homeassistant.helpers.frame").warning(REPORT)

            def test_clean():
                logging.getLogger("homeassistant.loader").warning(
                    "We found a custom integration mail_relay which has not been tested"
                )
            """
        )
    )
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    deprecated_use_expected: on purpose\n"
    )
    # Without pytest-cov's COV_CORE_* variables: the inner run is not code
    # this run measures, and its data would not combine with ours.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COV_CORE_")},
        "PYTHONPATH": str(ROOT),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = run.stdout
    assert "1 failed, 3 passed, 1 warning, 1 error" in out, out
    assert "ERROR test_inner.py::test_passes_but_reports" in out, out
    assert "FAILED test_inner.py::test_fails_and_reports" in out, out
    assert "the genuine failure" in out
    assert "ERROR test_inner.py::test_fails_and_reports" not in out, out
    # The failed test's report is still shown, as a warning.
    assert "PytestWarning: Home Assistant reported a deprecated use" in out, out
