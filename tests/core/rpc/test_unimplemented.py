"""Unknown methods (efs_csi.rpc.hook.unimplemented_fallback): a well-formed UNIMPLEMENTED from a
real handler, never grpclib's bare abort without a content-type (which grpc-go clients report
as "missing content-type"). Over a real socket with a grpc-go-like client:
tests/integration/test_server_lifecycle.py."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from efs_csi.rpc.hook import CallsInFlight, instrument, unimplemented_fallback
from efs_csi.rpc.identity import IdentityService, Readiness


def test_known_methods_keep_their_handlers() -> None:
    service = instrument(IdentityService(Readiness(), controller=False), CallsInFlight())
    mapping = unimplemented_fallback(service.__mapping__())
    path = "/csi.v1.Identity/Probe"
    assert mapping.get(path) is service.__mapping__()[path]


@pytest.mark.asyncio
async def test_an_unknown_method_gets_a_handler_that_answers_unimplemented() -> None:
    service = instrument(IdentityService(Readiness(), controller=False), CallsInFlight())
    handler = unimplemented_fallback(service.__mapping__()).get("/csi.v1.Node/NoSuchCall")
    assert handler is not None
    with pytest.raises(GRPCError) as caught:
        await handler.func(None)  # type: ignore[arg-type]
    assert caught.value.status == Status.UNIMPLEMENTED
