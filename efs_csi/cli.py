"""Command-line pieces shared by both binaries.

Each binary's ``__main__`` is the one place that reads its flags and the process environment:
it builds its parser from ``base_parser`` (so the common flags are spelled the same way, with
defaults from the environment it is given), configures logging, and turns the parsed flags into
a frozen configuration (``efs_csi.serving.ServingConfig`` for the part both share) for its
composition root, and runs it with ``efs_csi.serving.run``.
Each exposes ``build_parser()`` so the Helm chart's arguments can be checked against it.
argparse already exits 2 with a usage line on an unknown flag or a bad value, a bad default
from the environment included (argparse passes string defaults through ``type``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TypeVar

from efs_csi import __version__
from efs_csi.booleans import EXPECTED, parse_bool_text
from efs_csi.logging import LOG_FORMATS, LOG_LEVELS, configure_logging
from efs_csi.rpc.server import Endpoint, parse_endpoint
from efs_csi.serving import ServingConfig


def parse_bool(text: str) -> bool:
    """A boolean flag's value, in the one vocabulary of ``efs_csi.booleans`` (argparse names
    the flag in its error)."""
    value = parse_bool_text(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected {EXPECTED}, got {text!r}")
    return value


def add_bool_flag(parser: argparse.ArgumentParser, flag: str, *, default: bool,
                  help_text: str) -> None:
    """A flag usable as ``--flag``, ``--flag=true`` or ``--flag=false`` (as the reference)."""
    parser.add_argument(flag, type=parse_bool, nargs="?", const=True, default=default,
                        metavar="true|false", help=help_text)


def endpoint_arg(text: str) -> Endpoint:
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def host_port_arg(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected host:port, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


Number = TypeVar("Number", int, float)


def _number(text: str, convert: Callable[[str], Number],
            acceptable: Callable[[Number], bool], expected: str) -> Number:
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not acceptable(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda value: value > 0, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda value: value >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda value: value > 0, "a positive number")


def non_negative_float(text: str) -> float:
    return _number(text, float, lambda value: value >= 0 and value != float("inf"),
                   "a number >= 0")


def base_parser(prog: str, description: str,
                environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    parser.add_argument("--endpoint", type=endpoint_arg,
                        default=environ.get("CSI_ENDPOINT", "unix:///csi/csi.sock"),
                        help="CSI endpoint: unix:///path/to/csi.sock or tcp://host:port "
                             "(default: CSI_ENDPOINT)")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="json")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                        type=str.lower)
    parser.add_argument("--http-endpoint", type=host_port_arg, default=None,
                        metavar="HOST:PORT", help="serve Prometheus metrics and /healthz here")
    parser.add_argument("--shutdown-grace-period", type=positive_float, default=30.0,
                        metavar="SECONDS",
                        help="how long in-flight calls may run after SIGTERM")
    return parser


def serving_config(args: argparse.Namespace) -> ServingConfig:
    return ServingConfig(endpoint=args.endpoint, http_endpoint=args.http_endpoint,
                         shutdown_grace_period=args.shutdown_grace_period)


def parse_and_configure_logging(parser: argparse.ArgumentParser,
                                argv: list[str] | None) -> argparse.Namespace:
    """The parsed flags, with logging configured as they say (before anything else logs)."""
    args = parser.parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    return args
