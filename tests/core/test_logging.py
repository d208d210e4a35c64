import io
import json
import logging

import pytest

from efs_csi import csi
from efs_csi.logging import configure_logging, get_logger, redact, scrub_text

SECRET = "S3CR3T-VALUE-42"


@pytest.fixture(autouse=True)
def restore_root_logger():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def request_with_secret() -> csi.NodeStageVolumeRequest:
    return csi.NodeStageVolumeRequest(volume_id="fs-0123abcd", secrets={"awsRoleArn": SECRET})


def test_redact_replaces_secret_keys_recursively() -> None:
    data = {"a": {"secrets": {"k": SECRET}}, "list": [{"controller_secret": SECRET}], "n": 1}
    assert SECRET not in json.dumps(redact(data))
    assert redact(data)["n"] == 1


def test_scrub_text_removes_secrets_from_reprs() -> None:
    text = repr(request_with_secret())
    assert SECRET in text
    assert SECRET not in scrub_text(text)
    assert "fs-0123abcd" in scrub_text(text)


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_no_secret_reaches_the_output(log_format: str) -> None:
    stream = io.StringIO()
    configure_logging(log_format, "debug", stream=stream)
    log = get_logger("test")
    request = request_with_secret()
    log.info("request", request=request.to_dict(), secrets={"k": SECRET})
    log.info(f"free text {request!r}")
    try:
        raise ValueError(f"failed on {request!r}")
    except ValueError:
        log.exception("with traceback")
    logging.getLogger("stdlib.lib").warning("stdlib says %r", request)
    output = stream.getvalue()
    assert "with traceback" in output and "stdlib says" in output
    assert "Traceback" in output or "exc_type" in output or "ValueError" in output
    assert SECRET not in output


def test_json_lines_are_json_with_level_and_logger() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    get_logger("efs_csi.test").info("hello", volume_id="fs-1")
    logging.getLogger("other").debug("hidden at info")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["event"] == "hello" and lines[0]["level"] == "info"
    assert lines[0]["logger"] == "efs_csi.test" and lines[0]["volume_id"] == "fs-1"


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml", "info")


@pytest.mark.timeout(30)
def test_scrubbing_huge_input_terminates() -> None:
    """A huge run of word characters must not make the scrubber backtrack quadratically (at
    this size that took many minutes: the per-test timeout is the guard, not a speed target)."""
    huge = "a" * 200_000
    for text in (huge, huge + "secret", "secret" + huge, f"secrets={huge}"):
        assert scrub_text(text).startswith(text[:6])
    assert SECRET not in scrub_text(f"{huge} secrets={{'k': '{SECRET}'}}")
