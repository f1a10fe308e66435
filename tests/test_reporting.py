"""What a person sees of the work never stops the work: an artifact the API refuses is a warning."""

import logging

import pytest
from prefect import flow

from tasks.reporting import progress, report_table


def test_a_refused_artifact_is_a_warning_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    @flow
    def work() -> int:
        with progress(3, "counting") as advance:
            for _ in range(3):
                advance()
        report_table("Not a valid key!", "a table Prefect refuses", [{"a": 1}])  # keys: lowercase and dashes
        return 42

    with caplog.at_level(logging.WARNING):
        assert work() == 42
    assert any("Artifact not published" in r.getMessage() for r in caplog.records)


def test_outside_a_run_tables_are_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("eoflows")  # the CLI's logger (it may not propagate to the root: caplog's handler)
    log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="eoflows"):
            report_table("usage", "Usage", [{"measure": "wall time (s)", "value": 1.5}])
    finally:
        log.removeHandler(caplog.handler)
    messages = [r.getMessage() for r in caplog.records]  # (twice when the logger also propagates to the root)
    assert set(messages) == {"Usage", "  wall time (s) | 1.5"} and messages.index("Usage") == 0
