
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


@pytest.mark.parametrize(("exc", "status"), [
    (OSError(36, "File name too long", "/k/" + "a" * 300), Status.INVALID_ARGUMENT),
    (FileExistsError(17, "File exists", "/k/target"), Status.FAILED_PRECONDITION),
    (NotADirectoryError(20, "Not a directory", "/k/file/x"), Status.FAILED_PRECONDITION),
    (FileNotFoundError(2, "No such file or directory", "/k/gone"), Status.NOT_FOUND),
    (PermissionError(13, "Permission denied", "/k/locked"), Status.PERMISSION_DENIED),
    (OSError(28, "No space left on device", "/k"), Status.RESOURCE_EXHAUSTED),
    (OSError(116, "Stale file handle", "/k/nfs"), Status.UNAVAILABLE),
    (OSError(71, "Protocol error", "/k/odd"), Status.INTERNAL),
])
def test_os_errors_answer_by_errno_naming_the_path(exc: OSError, status: Status) -> None:
    mapped = errors.to_grpc_error(exc)
    assert mapped.status == status
    assert exc.strerror in (mapped.message or "")
    assert str(exc.filename)[:40] in (mapped.message or "")
    assert "OSError" not in (mapped.message or "")


def test_an_os_error_without_a_path_still_says_what_happened() -> None:
    mapped = errors.to_grpc_error(OSError(5, "Input/output error"))
    assert (mapped.status, mapped.message) == (Status.UNAVAILABLE, "Input/output error")


ASSUMED = "arn:aws:sts::123456789012:assumed-role/efs-csi-controller/botocore-session-1"


@pytest.mark.parametrize("exc", [
    errors.PermissionDenied(f"EFS CreateAccessPoint failed: AccessDenied: User: {ASSUMED} "
                            "is not authorized to perform: elasticfilesystem:CreateAccessPoint"),
    errors.Unavailable("AssumeRole (role arn:aws:iam::123456789012:role/x-account-efs)"),
    errors.Internal("on arn:aws-us-gov:elasticfilesystem:us-gov-west-1:123456789012:"
                    "file-system/fs-0123456789abcdef0, in 'quotes'"),
    GRPCError(Status.PERMISSION_DENIED, f"User: {ASSUMED}"),
])
def test_no_account_bearing_arn_reaches_the_caller(exc: Exception) -> None:
    """Review finding #15: what the CO gets becomes PVC events that tenants read."""
    message = errors.to_grpc_error(exc).message or ""
    assert "123456789012" not in message and "arn:" not in message
    assert errors.WITHHELD in message


def test_what_is_not_an_account_stays() -> None:
    text = ("it was created with capacity 107374182400 bytes; secret awsRoleArn: expected an "
            "IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    assert errors.to_grpc_error(errors.AlreadyExists(text)).message == text
    # AWS's own texts also lose bare account numbers (never a capacity: the adapter alone asks).
    assert errors.without_account_details("account 123456789012 denied",
                                          account_numbers=True) == \
        "account <account withheld> denied"


def test_the_docstring_draws_every_domain_error() -> None:
    """The tree in ``efs_csi.errors``' docstring names every CsiError of the driver (as httpx
    draws its own), so a new one cannot be left out of the picture."""
    import efs_csi.cloud
    import efs_csi.kube
    import efs_csi.mounting.commands
    import efs_csi.mounting.local  # noqa: F401 - their errors join the tree

    def subclasses(kind: type[errors.CsiError]) -> list[type[errors.CsiError]]:
        return [kind, *(sub for child in kind.__subclasses__() for sub in subclasses(child))]

    drawn = errors.__doc__ or ""
    names = {kind.__name__ for kind in subclasses(errors.CsiError)
             if kind.__module__.startswith("efs_csi")}
    assert len(names) > 15
    assert [name for name in sorted(names) if f" {name} " not in drawn] == []
