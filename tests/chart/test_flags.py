"""The chart never passes a flag the binaries reject, and every binary flag is reachable.

Flags come from each binary's own ``build_parser()``, so a flag added to a binary without a
way to set it from values fails here. Every rendered argument list goes through the binary's
own ``main()`` up to serving (tests/support/startup.py), so a chart arg the parser or the
startup checks reject fails here too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from efs_csi_controller.__main__ import build_parser as controller_parser
from efs_csi_node.__main__ import build_parser as node_parser
from tests.chart.render import binary_args, flag_name, render, values_files, values_id
from tests.support.startup import start_up

PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "efs-csi-controller": controller_parser,
    "efs-csi-node": node_parser,
}

# Flags deliberately not settable from values, and why.
NOT_FROM_VALUES = {
    "efs-csi-controller": {
        "--help": "prints usage and exits",
        "--version": "prints the version and exits",
    },
    "efs-csi-node": {
        "--help": "prints usage and exits",
        "--version": "prints the version and exits",
        "--availability-zone": "a per-node fact: one DaemonSet-wide value would be wrong on "
                               "every multi-zone cluster; the binary reads instance metadata, "
                               "then the Node's topology.kubernetes.io/zone label",
        "--efs-utils-state-dir": "efs-utils fixes its state directory at /var/run/efs, which "
                                 "the chart mounts; the flag is for a node run outside its "
                                 "image (tests), never for the chart to change",
    },
}


class ParserRejected(Exception):
    pass


def parse(binary: str, args: list[str]) -> argparse.Namespace:
    parser = PARSERS[binary]()

    def reject(message: str) -> None:  # argparse would print usage and exit 2
        raise ParserRejected(message)

    parser.error = reject  # type: ignore[method-assign]
    return parser.parse_args(args)


def long_flags(binary: str) -> set[str]:
    parser = PARSERS[binary]()
    return {option for action in parser._actions for option in action.option_strings
            if option.startswith("--")}


@pytest.fixture(scope="module")
def rendered_args() -> dict[str, dict[str, list[list[str]]]]:
    """values id -> binary -> argument lists."""
    table = {}
    for values in values_files():
        manifests = render(values)
        table[values_id(values)] = {binary: binary_args(manifests, binary) for binary in PARSERS}
    return table


@pytest.mark.parametrize("values", values_files(), ids=values_id)
def test_every_chart_arg_list_passes_the_binarys_own_startup(
        values: Path | None, rendered_args: dict[str, dict[str, list[list[str]]]]) -> None:
    per_binary = rendered_args[values_id(values)]
    for binary, arg_lists in per_binary.items():
        for args in arg_lists:
            outcome = start_up(binary, args)
            assert outcome.accepted, f"{binary} refuses the chart's args {args}:\n{outcome.error}"
            parsed = parse(binary, args)
            if binary == "efs-csi-node":
                assert parsed.node_id, "the node must get its node id"


def test_startup_check_can_fail() -> None:
    """The node's own startup check (beyond argparse) is part of what runs."""
    outcome = start_up("efs-csi-node", ["--node-id=n", "--port-range-upper-bound=20000"])
    assert outcome.status == 2 and "--port-range-upper-bound" in outcome.error


def test_defaults_render_both_binaries(
        rendered_args: dict[str, dict[str, list[list[str]]]]) -> None:
    defaults = rendered_args["defaults"]
    assert len(defaults["efs-csi-controller"]) == 1
    assert len(defaults["efs-csi-node"]) == 1


@pytest.mark.parametrize("binary", sorted(PARSERS))
def test_every_binary_flag_is_reachable_from_values(
        binary: str, rendered_args: dict[str, dict[str, list[list[str]]]]) -> None:
    passed = {flag_name(arg) for per_binary in rendered_args.values()
              for args in per_binary[binary] for arg in args if arg.startswith("--")}
    unreachable = long_flags(binary) - passed - set(NOT_FROM_VALUES[binary])
    assert not unreachable, (
        f"{binary} flags no values file reaches: {sorted(unreachable)}; add a value for each "
        "(and set it in tests/chart/values/everything.yaml) or justify it in NOT_FROM_VALUES")


@pytest.mark.parametrize("binary", sorted(PARSERS))
def test_allow_list_names_only_real_flags(binary: str) -> None:
    assert set(NOT_FROM_VALUES[binary]) <= long_flags(binary)


def test_a_flag_the_binary_lacks_is_caught() -> None:
    """The check itself can fail: an invented flag is rejected by the real parser."""
    with pytest.raises(ParserRejected):
        parse("efs-csi-node", ["--node-id=n", "--no-such-flag=1"])
    with pytest.raises(ParserRejected):
        parse("efs-csi-controller", ["--access-point-limit=1e+06"])


def test_tags_keep_their_escapes() -> None:
    manifests = render(Path(__file__).parent / "values" / "everything.yaml")
    (args,) = binary_args(manifests, "efs-csi-controller")
    tags = next(arg for arg in args if arg.startswith("--tags="))
    assert tags == r"--tags=environment:prod path:c/d team\ name:a\:b"
    # The controller reads back exactly the map the values gave.
    from efs_csi_controller.tags import parse_tags

    assert parse_tags(tags.removeprefix("--tags=")) == {
        "environment": "prod", "team name": "a:b", "path": "c/d"}
