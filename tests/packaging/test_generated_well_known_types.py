"""The well-known types' module is written with only the types the CSI messages use
(protos/generate.py): the pruning keeps what is referenced, directly or through another kept
type, and nothing the CSI messages could miss."""

from __future__ import annotations

import datetime
import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import efs_csi.csi as csi
from efs_csi.csi._generated.google import protobuf as well_known

GENERATE = Path(__file__).resolve().parents[2] / "protos" / "generate.py"


def _generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("protos_generate", GENERATE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("protos_generate", module)
    spec.loader.exec_module(module)
    return module


SOURCE = textwrap.dedent('''\
    __all__ = (
        "Kept",
        "Dropped",
        "Nested",
    )

    import betterproto2

    from ...message_pool import default_message_pool


    @dataclass(eq=False, repr=False)
    class Kept(betterproto2.Message):
        inner: "Nested | None" = betterproto2.field(1, betterproto2.TYPE_MESSAGE)


    default_message_pool.register_message("google.protobuf", "Kept", Kept)


    @dataclass(eq=False, repr=False)
    class Dropped(betterproto2.Message):
        value: "str" = betterproto2.field(1, betterproto2.TYPE_STRING)


    default_message_pool.register_message(
        "google.protobuf", "Dropped", Dropped
    )


    @dataclass(eq=False, repr=False)
    class Nested(betterproto2.Message):
        value: "int" = betterproto2.field(1, betterproto2.TYPE_INT64)


    default_message_pool.register_message("google.protobuf", "Nested", Nested)
''')


def test_a_type_referenced_through_a_kept_one_is_kept_and_the_rest_dropped() -> None:
    generate = _generate()
    keep = generate.kept_types(SOURCE, {"Kept"})
    assert keep == {"Kept", "Nested"}
    pruned = generate.prune_unreferenced(SOURCE, keep)
    assert "class Dropped" not in pruned
    assert '"Dropped"' not in pruned
    assert pruned.count("register_message(") == 2
    assert "class Nested" in pruned and '"Nested",' in pruned
    assert "\n\n\n\n" not in pruned
    compile(pruned, "pruned", "exec")


def test_a_reference_to_a_type_the_module_lacks_fails_the_generation() -> None:
    with pytest.raises(SystemExit, match="Missing"):
        _generate().kept_types(SOURCE, {"Kept", "Missing"})


def test_the_written_module_keeps_what_the_csi_messages_use() -> None:
    assert set(well_known.__all__) == {"BoolValue", "Int64Value", "Timestamp"}
    # One message per kept type, each through its wrapper on the wire and back.
    probe = csi.ProbeResponse(ready=True)
    capacity = csi.GetCapacityResponse(available_capacity=1, maximum_volume_size=7)
    snapshot = csi.Snapshot(snapshot_id="s", creation_time=datetime.datetime(
        2026, 12, 6, 12, 0, 1, tzinfo=datetime.UTC))
    for message in (probe, capacity, snapshot):
        assert type(message).parse(bytes(message)) == message
    assert csi.ProbeResponse.parse(bytes(probe)).ready is True
    assert csi.GetCapacityResponse.parse(bytes(capacity)).maximum_volume_size == 7
