"""The driver's own log lines bypass the standard library's logging (issue 22): they reach the
configured stream without a LogRecord, follow reconfiguration, filter by level, and render
exceptions; other libraries' records still go through the root handler."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from efs_csi.logging import configure_logging, get_logger


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_driver_lines_make_no_log_record_other_libraries_do() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    records = Records()
    logging.getLogger().addHandler(records)
    get_logger("efs_csi.rpc").info("rpc", method="DeleteVolume", code="OK")
    logging.getLogger("botocore.test").warning("from a library")
    assert records.messages == ["from a library"]
    written = lines(stream)
    assert [line["event"] for line in written] == ["rpc", "from a library"]
    assert written[0]["logger"] == "efs_csi.rpc" and written[0]["method"] == "DeleteVolume"
    assert written[0]["level"] == "info" and "timestamp" in written[0]
    assert written[1]["logger"] == "botocore.test" and written[1]["level"] == "warning"


def test_a_logger_made_before_configuration_follows_each_configuration() -> None:
    log = get_logger("efs_csi.early")  # as modules make theirs, at import time
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "info", stream=first)
    log.info("one")
    configure_logging("console", "info", stream=second)
    log.info("two")
    assert [line["event"] for line in lines(first)] == ["one"]
    assert "two" in second.getvalue() and "one" not in second.getvalue()


def test_levels_filter_the_driver_lines() -> None:
    stream = io.StringIO()
    configure_logging("json", "warning", stream=stream)
    log = get_logger("efs_csi.levels")
    log.debug("hidden debug")
    log.info("hidden info")
    log.warning("shown warning")
    log.error("shown error")
    assert [(line["event"], line["level"]) for line in lines(stream)] == [
        ("shown warning", "warning"), ("shown error", "error")]


def test_exceptions_are_rendered_given_or_current() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    log = get_logger("efs_csi.failures")
    try:
        raise ValueError("boom in the handler")
    except ValueError as exc:
        failure = exc
        log.exception("current")
    log.error("given", exc_info=failure)  # as the rpc hook logs an unexpected failure
    written = lines(stream)
    assert [line["event"] for line in written] == ["current", "given"]
    for line in written:
        assert "boom in the handler" in json.dumps(line["exception"])


def test_a_stream_that_cannot_be_written_never_fails_the_caller() -> None:
    """As with the standard library's handlers: a closed stderr (a pod's log pipe gone, a
    test's captured stream closed) must not turn a log line into a failed CSI call."""
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    stream.close()
    get_logger("efs_csi.rpc").info("rpc", method="DeleteVolume", code="OK")
    get_logger("efs_csi.rpc").error("rpc", exc_info=ValueError("still quiet"))


def test_without_a_stream_lines_go_to_stderr_as_it_is_now(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    get_logger("efs_csi.stderr").info("to the current stderr")
    assert json.loads(capsys.readouterr().err)["event"] == "to the current stderr"
