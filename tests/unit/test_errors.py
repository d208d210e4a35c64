
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from efs_csi import errors


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.InvalidArgument("x"), Status.INVALID_ARGUMENT),
        (errors.NotFound("x"), Status.NOT_FOUND),
        (errors.AlreadyExists("x"), Status.ALREADY_EXISTS),
        (errors.Aborted("x"), Status.ABORTED),
        (errors.ResourceExhausted("x"), Status.RESOURCE_EXHAUSTED),
        (errors.FailedPrecondition("x"), Status.FAILED_PRECONDITION),
        (errors.PermissionDenied("x"), Status.PERMISSION_DENIED),
        (errors.Unavailable("x"), Status.UNAVAILABLE),
        (errors.DeadlineExceeded("x"), Status.DEADLINE_EXCEEDED),
        (errors.Unimplemented("x"), Status.UNIMPLEMENTED),
        (errors.Internal("x"), Status.INTERNAL),
        (TimeoutError(), Status.DEADLINE_EXCEEDED),
        (GRPCError(Status.NOT_FOUND, "kept"), Status.NOT_FOUND),
    ],
)
def test_mapping(exc: BaseException, status: Status) -> None:
    assert errors.to_grpc_error(exc).status == status


def test_unexpected_errors_become_internal_without_details() -> None:
    error = errors.to_grpc_error(KeyError("secret-detail"))
    assert error.status == Status.INTERNAL
    assert "secret-detail" not in (error.message or "")
    assert "KeyError" in (error.message or "")


def test_missing_names_the_field() -> None:
    assert errors.missing("volume_id").message == "volume_id is required"


def test_messages_are_bounded_and_echoed_input_cut_short() -> None:
    huge = "x" * 100_000
    assert len(errors.shown(huge)) < 200 and "100000 characters" in errors.shown(huge)
    assert errors.shown("fs-1") == "'fs-1'"
    mapped = errors.to_grpc_error(errors.NotFound(f"volume {huge} does not exist"))
    assert len(mapped.message or "") <= errors.MAX_MESSAGE_CHARS + 40
    passed_through = errors.to_grpc_error(GRPCError(Status.NOT_FOUND, huge))
    assert passed_through.status == Status.NOT_FOUND
    assert len(passed_through.message or "") <= errors.MAX_MESSAGE_CHARS + 40
