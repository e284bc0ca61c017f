"""One table from domain errors to gRPC status codes, and rich INVALID_ARGUMENT details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ganshou_common import errors
from ganshou_common.outages import OUTAGES

STATUS_OF: list[tuple[type[Exception], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ConcurrencyConflict, grpc.StatusCode.ABORTED),
    (errors.RequestIdReused, grpc.StatusCode.ALREADY_EXISTS),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
]


def status_code_of(exc: Exception) -> grpc.StatusCode | None:
    for kind, code in STATUS_OF:
        if isinstance(exc, kind):
            return code
    if isinstance(exc, OUTAGES):
        return grpc.StatusCode.UNAVAILABLE
    return None


def to_grpc_status(code: grpc.StatusCode, exc: Exception) -> grpc.Status:
    """The status to abort with; INVALID_ARGUMENT carries google.rpc.BadRequest."""
    status = status_pb2.Status(code=code.value[0], message=str(exc) or code.name)
    if isinstance(exc, errors.InvalidArgument):
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in exc.violations
        ]))
        status.details.append(detail)
    return rpc_status.to_status(status)


def field_violations(err: grpc.aio.AioRpcError | grpc.RpcError) -> dict[str, str]:
    """Client side: the BadRequest field violations of an error, field → description."""
    status = rpc_status.from_call(err) if hasattr(err, "trailing_metadata") else None
    out: dict[str, str] = {}
    for detail in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            out.update({v.field: v.description for v in bad.field_violations})
    return out


