"""Less work per EFS call in aiobotocore, through the SDK's own extension points (its session's
components and its client's event emitter), never by replacing it.

A profile of the controller (``bench/controller_profile.py``, docs/performance.md) put
botocore's request path at about 40 % of a CSI call's CPU, and a listing of a file system's
10,000 access points at about half a second of CPU, nearly all of it botocore walking the
response's shapes in Python. Two levers:

- ``tune_session``: the session's ``response_parser_factory`` component makes REST-JSON parsers
  (EFS's protocol) that convert a response through a converter compiled once per shape. The
  JSON the parser decoded is its own, so it is converted in place: a shape whose JSON needs
  no conversion (strings, integers, booleans, and lists, maps and structures of them) is
  taken as it is when it holds only modelled, non-null members (two checks in C per
  structure), else copied without the others, instead of botocore's dispatch per value and
  its second copy of every page. A shape that needs botocore's conversions (timestamps,
  blobs, floats, documents, unions, JSON-valued strings, lists in headers) goes through
  botocore's own handler, and the result is the same either way: modelled members only,
  ``None`` values left out, members renamed from their JSON names
  (``tests/core/adapters/aws/test_tuning.py`` compares both on moto's answers).
- ``tune_client``: handlers that do nothing an EFS call in a pod needs are unregistered from
  the client's own emitter (a copy of the session's: other clients keep them): the Lambda
  recursion-detection header, an API-version header no EFS operation declares, a checksum
  member EFS does not model, the SDK's retry-telemetry headers (its retries are off: the
  driver retries per API itself, ``efs_csi.adapters.retries``), and rebuilding the fixed
  User-Agent on every request.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from aiobotocore.parsers import AioResponseParserFactory, AioRestJSONParser
from botocore import handlers as botocore_handlers
from botocore.model import Shape
from botocore.parsers import ResponseParser

#: (parser, JSON value) -> parsed value.
Converter = Callable[[Any, Any], Any]

#: Types whose JSON value is already what botocore's REST-JSON parser makes of it.
_AS_IS = frozenset({"string", "integer", "long", "boolean"})

#: Per shape: its converter, or None when its JSON value is taken as it is. Weak keys: a shape
#: belongs to its service model, which may go away with its client.
_converters: weakref.WeakKeyDictionary[Shape, Converter | None] = weakref.WeakKeyDictionary()


def _botocore(shape: Shape) -> Converter:
    """botocore's own handler for ``shape`` (members still go through ``_converter``)."""
    def convert(parser: Any, node: Any) -> Any:
        return ResponseParser._parse_shape(parser, shape, node)
    return convert


def _converter(shape: Shape) -> Converter | None:
    try:
        return _converters[shape]
    except KeyError:
        pass
    _converters[shape] = _botocore(shape)  # a shape that contains itself: botocore's way
    converter = _compile(shape)
    _converters[shape] = converter
    return converter


def _compile(shape: Shape) -> Converter | None:
    kind = shape.type_name
    serialization = shape.serialization
    if kind in _AS_IS:
        return _botocore(shape) if serialization.get("jsonvalue") else None
    if kind == "list" and serialization.get("location") != "header":
        return _list_converter(_converter(shape.member))
    if kind == "map":
        return _map_converter(_converter(shape.key),
                              _converter(shape.value))
    if kind == "structure" and not shape.is_document_type and not shape.is_tagged_union:
        members = tuple((name, member.serialization.get("name", name), _converter(member))
                        for name, member in shape.members.items())
        return _structure_converter(members)
    return _botocore(shape)


def _list_converter(member: Converter | None) -> Converter | None:
    if member is None:
        return None

    def convert(parser: Any, node: Any) -> Any:
        for index, item in enumerate(node):
            if item is not None:
                node[index] = member(parser, item)
        return node
    return convert


def _map_converter(key: Converter | None, value: Converter | None) -> Converter | None:
    if key is None and value is None:
        return None

    def convert(parser: Any, node: Any) -> Any:
        return {(k if key is None else key(parser, k)): (v if value is None else value(parser, v))
                for k, v in node.items()}
    return convert


def _structure_converter(members: tuple[tuple[str, str, Converter | None], ...]) -> Converter:
    if any(name != key for name, key, _ in members):
        return _renaming_structure_converter(members)
    names = frozenset(name for name, _, _ in members)
    converted = tuple((name, member) for name, _, member in members if member is not None)

    def convert(parser: Any, node: Any) -> Any:
        if node is None:
            return None
        for name, member in converted:
            value = node.get(name)
            if value is not None:
                node[name] = member(parser, value)
        if node.keys() <= names and None not in node.values():
            return node  # what botocore would build: modelled members only, none of them null
        return {name: value for name, value in node.items()
                if value is not None and name in names}
    return convert


def _renaming_structure_converter(members: tuple[tuple[str, str, Converter | None], ...]
                                  ) -> Converter:
    def convert(parser: Any, node: Any) -> Any:
        if node is None:
            return None
        parsed = {}
        for name, key, member in members:
            value = node.get(key)
            if value is not None:
                parsed[name] = value if member is None else member(parser, value)
        return parsed
    return convert


class CompiledRestJSONParser(AioRestJSONParser):  # type: ignore[misc]
    """aiobotocore's REST-JSON parser, converting values through the compiled converters."""

    def _parse_shape(self, shape: Shape, node: Any) -> Any:
        converter = _converter(shape)
        return node if converter is None else converter(self, node)


class TunedParserFactory(AioResponseParserFactory):  # type: ignore[misc]
    """The session's ``response_parser_factory``: compiled parsers for REST-JSON."""

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "rest-json":
            return CompiledRestJSONParser(**self._defaults)
        return super().create_parser(protocol_name)


def tune_session(session: Any) -> None:
    """Make ``session``'s clients parse REST-JSON answers with compiled converters (call before
    its clients are created)."""
    session.register_component("response_parser_factory", TunedParserFactory())


#: (event, handler) pairs no EFS call made from a pod needs; see the module docstring.
_UNNEEDED: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("before-call", botocore_handlers.add_recursion_detection_header),
    ("before-call", botocore_handlers.inject_api_version_header_if_needed),
    ("before-parameter-build", botocore_handlers._handle_request_validation_mode_member),
    ("request-created", botocore_handlers.add_retry_headers),
)


def tune_client(client: Any) -> None:
    """Unregister, from ``client``'s own event emitter, the handlers an EFS call does not need
    (see the module docstring)."""
    events = client.meta.events
    for event, handler in _UNNEEDED:
        events.unregister(event, handler)
    service = client.meta.service_model.service_id.hyphenize()
    rebuild = getattr(getattr(client, "_user_agent_creator", None),
                      "rebuild_and_replace_user_agent_handler", None)
    if rebuild is not None:
        events.unregister(f"request-created.{service}", rebuild)
