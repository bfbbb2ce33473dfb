"""Fail a test during which Home Assistant reported a deprecated use by mail_relay.

Home Assistant does not warn about most deprecated uses, it logs them: its frame
helper (``report_usage``) writes "Detected that custom integration 'mail_relay'
... This will stop working in Home Assistant X", its deprecation helpers "The
deprecated function ... was called from mail_relay". Python warnings raised on
our code's behalf are turned into errors by pyproject's ``filterwarnings``.

tests/conftest.py imports the fixture and the hook; this module needs nothing
but pytest, so tests/test_deprecations.py can run it in a bare pytest too.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Generator, Iterable

import pytest

INTEGRATION = "mail_relay"
# Words of Home Assistant's reports of a deprecated use, lower case.
_DEPRECATION_WORDS = ("deprecat", "will stop working", "will be removed")
# report_usage's prefix: every line starting so reports a use that will break.
_REPORT_USAGE = f"detected that custom integration '{INTEGRATION}'"

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def deprecation_reports(records: Iterable[logging.LogRecord]) -> list[str]:
    """Return the records (as text) that report a deprecated use by mail_relay."""
    found = []
    for record in records:
        if record.levelno < logging.WARNING:
            continue
        message = record.getMessage()
        text = message.lower()
        ours = INTEGRATION in text or record.name.startswith(
            f"custom_components.{INTEGRATION}"
        )
        if ours and (
            text.startswith(_REPORT_USAGE)
            or any(word in text for word in _DEPRECATION_WORDS)
        ):
            found.append(f"{record.levelname} {record.name}: {message}")
    return found


class _Records(logging.Handler):
    """Keep every record of WARNING or above."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report, so the check knows whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(autouse=True)
def no_deprecated_use(request: pytest.FixtureRequest) -> Generator[None]:
    """Fail at teardown if a deprecated use by mail_relay was logged.

    Its own handler on the root logger (not caplog, which the Home Assistant
    plugin turns to DEBUG for every test using it) sees setup, the test and the
    teardown of the fixtures set up after it. A test that already failed keeps
    its own failure: the reports become a warning instead. Tests that provoke a
    report on purpose are marked ``deprecated_use_expected``.
    """
    handler = _Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
    found = deprecation_reports(handler.records)
    if not found or request.node.get_closest_marker("deprecated_use_expected"):
        return
    text = "Home Assistant reported a deprecated use by mail_relay:\n" + "\n".join(
        found
    )
    reports = request.node.stash.get(_REPORTS, {})
    if any(report.failed for report in reports.values()):
        warnings.warn(pytest.PytestWarning(text), stacklevel=1)
        return
    pytest.fail(text, pytrace=False)
