"""One boolean vocabulary (efs_csi.booleans): a command-line flag, a StorageClass parameter and
a volume context key accept the same spellings (Go's strconv.ParseBool, as the reference driver
reads all three) and refuse every other text with an error that names the flag or the key."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from efs_csi.booleans import FALSE_SPELLINGS, TRUE_SPELLINGS
from efs_csi.contract.volume_context import parse_volume_context
from efs_csi.errors import InvalidArgument
from efs_csi_controller.__main__ import build_parser as controller_parser
from efs_csi_controller.params import parse_parameters
from efs_csi_node.__main__ import build_parser as node_parser

GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
REFUSED = ("yes", "no", "on", "off", "y", "n", "tRuE1", "", "2", "enabled")
STORAGE_CLASS = {"provisioningMode": "efs-ap", "fileSystemId": "fs-12345678",
                 "directoryPerms": "700"}


def flag(text: str) -> bool:
    return bool(controller_parser().parse_args([f"--adaptive-retry-mode={text}"])
                .adaptive_retry_mode)


def node_flag(text: str) -> bool:
    return bool(node_parser().parse_args([f"--vol-metrics-opt-in={text}"]).vol_metrics_opt_in)


def storage_class(text: str) -> bool:
    return parse_parameters({**STORAGE_CLASS, "ensureUniqueDirectory": text}) \
        .ensure_unique_directory


def volume_context(text: str) -> bool:
    return parse_volume_context({"encryptInTransit": text}).encrypt_in_transit


READERS: dict[str, Callable[[str], bool]] = {
    "--adaptive-retry-mode": flag, "--vol-metrics-opt-in": node_flag,
    "ensureUniqueDirectory": storage_class, "encryptInTransit": volume_context}


def test_the_table_is_go_parsebool_in_any_case() -> None:
    assert {text.lower() for text in GO_TRUE} == TRUE_SPELLINGS
    assert {text.lower() for text in GO_FALSE} == FALSE_SPELLINGS


@pytest.mark.parametrize("field", sorted(READERS))
@pytest.mark.parametrize(("text", "expected"),
                         [(text, True) for text in GO_TRUE] + [(text, False) for text in GO_FALSE]
                         + [(" true ", True), ("FaLsE", False)])
def test_every_reader_takes_the_same_spellings(field: str, text: str, expected: bool) -> None:
    assert READERS[field](text) is expected


@pytest.mark.parametrize("field", sorted(READERS))
@pytest.mark.parametrize("text", REFUSED)
def test_every_reader_refuses_other_text_naming_the_field(
        field: str, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    if field.startswith("--"):
        with pytest.raises(SystemExit) as exited:
            READERS[field](text)
        assert exited.value.code == 2
        error = capsys.readouterr().err
    else:
        with pytest.raises(InvalidArgument) as refused:
            READERS[field](text)
        error = refused.value.message
    assert field in error
    assert "true or false" in error and repr(text) in error
