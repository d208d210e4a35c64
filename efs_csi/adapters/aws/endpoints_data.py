"""botocore's endpoints data, loaded with only the services the driver's clients use.

botocore's endpoints data (``botocore/data/endpoints.json``, 1.2 MB, every service of
every partition) is parsed by the legacy endpoint resolver of each session, which still gives a
client its signing region and credential scope; kept whole (as ordered dicts) it held ~6.5 MiB
of the controller's idle RSS. ``LeanEndpointsFileLoader`` keeps, of botocore's own copy, the
partitions and only the entries of ``ENDPOINT_SERVICES``: every other service's entry is parsed
and dropped one at a time (so the freed objects do not leave the heap fragmented), and nothing
else botocore loads changes. A copy of its own (``AWS_DATA_PATH``) is loaded whole, as botocore
would.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiobotocore.session import AioSession
from botocore.loaders import JSONFileLoader, Loader

#: The services whose entries of the endpoints data a session of the driver can need: EFS (by its
#: endpoint prefix), STS (assumed roles, web identity), and the clients botocore's credential and
#: token providers make (SSO, SSO-OIDC, sign-in). Another service would resolve from its
#: partition's defaults, as one that botocore's data does not list.
ENDPOINT_SERVICES = frozenset({"elasticfilesystem", "sts", "sso", "sso-oidc", "signin"})
#: botocore's own endpoints data, as its loader names it (without the extension).
BUILTIN_ENDPOINTS = os.path.join(Loader.BUILTIN_DATA_PATH, "endpoints")

_SPACE = re.compile(r"[ \t\n\r]*")
_KEPT = json.JSONDecoder(object_pairs_hook=OrderedDict)  # as botocore's loader parses
_DROPPED = json.JSONDecoder()
#: Parses the member ``key`` whose value starts at an offset: (keep it?, its value, its end).
_Member = Callable[[str, str, int], tuple[bool, Any, int]]


def _space(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _expect(text: str, at: int, char: str) -> None:
    if text[at:at + 1] != char:
        raise ValueError(f"endpoints data: {char!r} expected at {at}")


def _object(text: str, at: int, member: _Member) -> tuple[OrderedDict[str, Any], int]:
    """The JSON object at ``at`` (its members parsed by ``member``) and where it ends."""
    _expect(text, at, "{")
    result: OrderedDict[str, Any] = OrderedDict()
    at = _space(text, at + 1)
    if text[at:at + 1] == "}":
        return result, at + 1
    while True:
        _expect(text, at, '"')
        key, at = _DROPPED.raw_decode(text, at)
        at = _space(text, at)
        _expect(text, at, ":")
        keep, value, at = member(key, text, _space(text, at + 1))
        if keep:
            result[key] = value
        at = _space(text, at)
        if text[at:at + 1] == "}":
            return result, at + 1
        _expect(text, at, ",")
        at = _space(text, at + 1)


def _array(text: str, at: int, member: _Member) -> tuple[list[Any], int]:
    _expect(text, at, "[")
    result: list[Any] = []
    at = _space(text, at + 1)
    if text[at:at + 1] == "]":
        return result, at + 1
    while True:
        _, value, at = member("", text, at)
        result.append(value)
        at = _space(text, at)
        if text[at:at + 1] == "]":
            return result, at + 1
        _expect(text, at, ",")
        at = _space(text, at + 1)


def _whole(key: str, text: str, at: int) -> tuple[bool, Any, int]:
    value, end = _KEPT.raw_decode(text, at)
    return True, value, end


def _service(key: str, text: str, at: int) -> tuple[bool, Any, int]:
    if key in ENDPOINT_SERVICES:
        return _whole(key, text, at)
    _, end = _DROPPED.raw_decode(text, at)  # parsed and freed at once
    return False, None, end


def _partition_member(key: str, text: str, at: int) -> tuple[bool, Any, int]:
    if key == "services":
        return (True, *_object(text, at, _service))
    return _whole(key, text, at)


def _partition(key: str, text: str, at: int) -> tuple[bool, Any, int]:
    return (True, *_object(text, at, _partition_member))


def _top_member(key: str, text: str, at: int) -> tuple[bool, Any, int]:
    if key == "partitions":
        return (True, *_array(text, at, _partition))
    return _whole(key, text, at)


def lean_endpoints(text: str) -> OrderedDict[str, Any]:
    """The endpoints data ``text`` with only ``ENDPOINT_SERVICES`` in each partition's services
    (ValueError when it is not shaped as botocore's endpoints data)."""
    data, end = _object(text, _space(text, 0), _top_member)
    if _space(text, end) != len(text) or not isinstance(data.get("partitions"), list):
        raise ValueError("endpoints data: not a partitions document")
    return data


class LeanEndpointsFileLoader(JSONFileLoader):  # type: ignore[misc]  # botocore is untyped
    """botocore's JSON file loader, except that botocore's own endpoints data keeps only the
    services the driver's clients use (the module docstring)."""

    def load_file(self, file_path: str) -> Any:
        if file_path != BUILTIN_ENDPOINTS or not os.path.isfile(file_path + ".json"):
            return super().load_file(file_path)
        with open(file_path + ".json", "rb") as stream:
            text = stream.read().decode("utf-8")
        try:
            return lean_endpoints(text)
        except (ValueError, IndexError):  # a layout botocore has not used so far: all of it
            return super().load_file(file_path)


def lean_data_loader(session: AioSession) -> None:
    """Make ``session`` load botocore's endpoints data through ``LeanEndpointsFileLoader``
    (before its first client: the endpoint resolver is built once per session)."""
    loader = session.get_component("data_loader")
    if not isinstance(loader.file_loader, LeanEndpointsFileLoader):
        loader.file_loader = LeanEndpointsFileLoader()
