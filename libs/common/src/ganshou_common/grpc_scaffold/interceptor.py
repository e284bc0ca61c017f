"""The server interceptor: RED metrics, correlation ids, authentication and authorisation,
and the mapping of every outcome to a status code, around every RPC handler.

Health checking and reflection are exempt from authentication. Anything unexpected
becomes INTERNAL with a correlation id (logged with its traceback, never sent).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
import structlog
from google.protobuf.message import Message
from prometheus_client import Counter, Histogram

from ganshou_common import errors, logs
from ganshou_common.grpc_scaffold.auth import Principal, Role, TokenVerifier
from ganshou_common.grpc_scaffold.errors import status_code_of, to_grpc_status
from ganshou_common.validation import check_request

STARTED = Counter("grpc_server_started_total", "RPCs started on the server",
                  ["grpc_type", "grpc_service", "grpc_method"])
HANDLED = Counter("grpc_server_handled_total", "RPCs completed on the server, by status code",
                  ["grpc_type", "grpc_service", "grpc_method", "grpc_code"])
HANDLING = Histogram("grpc_server_handling_seconds", "Time to handle an RPC on the server",
                     ["grpc_type", "grpc_service", "grpc_method"],
                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
CORRELATION_HEADER = "x-correlation-id"

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)
_correlation: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")
log = logs.get("ganshou.grpc")


def current_principal() -> Principal:
    p = _principal.get()
    if p is None:  # only an exempt RPC runs without one, and those never ask
        raise errors.Unauthenticated("no caller")
    return p


def current_correlation_id() -> str:
    return _correlation.get()


def _rpc_type(h: grpc.RpcMethodHandler) -> str:
    return {(False, False): "unary", (True, False): "client_stream",
            (False, True): "server_stream", (True, True): "bidi_stream"}[(h.request_streaming, h.response_streaming)]


class ScaffoldInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, verifier: TokenVerifier, roles: Mapping[str, frozenset[Role]]):
        self._verifier = verifier
        self._roles = roles

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        exempt = method.startswith(EXEMPT_PREFIXES)
        _, service, name = method.split("/")
        labels = (_rpc_type(handler), service, name)
        metadata = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        return _wrap(handler, _Call(self, method, labels, metadata, exempt))

    def authenticate(self, method: str, metadata: dict[str, str]) -> Principal:
        auth = metadata.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            raise errors.Unauthenticated("a bearer token is required (authorization: Bearer <jwt>)")
        principal = self._verifier.verify(auth[7:].strip())
        allowed = self._roles.get(method, frozenset())
        if principal.role not in allowed:
            raise errors.PermissionDenied(f"role {principal.role} may not call {method}")
        return principal


class _Call:
    """One RPC's bookkeeping: binds the caller, times it, maps how it ended."""

    def __init__(self, icpt: ScaffoldInterceptor, method: str, labels: tuple[str, str, str],
                 metadata: dict[str, str], exempt: bool):
        self.icpt, self.method, self.labels, self.metadata, self.exempt = icpt, method, labels, metadata, exempt

    def begin(self) -> None:
        STARTED.labels(*self.labels).inc()
        cid = self.metadata.get(CORRELATION_HEADER) or str(uuid.uuid4())
        # Each RPC runs in its own task, so these context variables are its own.
        _correlation.set(cid)
        structlog.contextvars.bind_contextvars(correlation_id=cid, rpc=self.method)
        if not self.exempt:
            _principal.set(self.icpt.authenticate(self.method, self.metadata))

    def end(self, started: float, code: grpc.StatusCode) -> None:
        HANDLED.labels(*self.labels, code.name).inc()
        HANDLING.labels(*self.labels).observe(time.perf_counter() - started)
        structlog.contextvars.unbind_contextvars("correlation_id", "rpc")

    async def fail(self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, exc: Exception) -> None:
        """Abort the RPC with `code` for `exc` (raises AbortError)."""
        if code == grpc.StatusCode.INTERNAL:
            log.exception("rpc_failed", error=repr(exc))
            exc = Exception(f"internal error; correlation id {_correlation.get()}")
        elif code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            log.info("rpc_refused", code=code.name, reason=str(exc))
        status = to_grpc_status(code, exc)
        await context.abort(status.code, status.details, status.trailing_metadata)


def _classify(exc: BaseException, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    if isinstance(exc, grpc.aio.AbortError):
        return context.code() or grpc.StatusCode.UNKNOWN
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return status_code_of(exc) or grpc.StatusCode.INTERNAL  # type: ignore[arg-type]


async def _abort_for(call: _Call, context: grpc.aio.ServicerContext, code: grpc.StatusCode,
                     exc: BaseException) -> None:
    """Turn an error into an abort (which raises); aborts and cancellations pass through."""
    if isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError):
        await call.fail(context, code, exc)


def _wrap(handler: grpc.RpcMethodHandler, call: _Call) -> grpc.RpcMethodHandler:
    kwargs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}

    if not handler.response_streaming:
        inner = handler.unary_unary or handler.stream_unary

        async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started, code = time.perf_counter(), grpc.StatusCode.OK
            try:
                call.begin()
                if isinstance(request, Message):
                    check_request(request)
                return await inner(request, context)
            except BaseException as exc:
                code = _classify(exc, context)
                await _abort_for(call, context, code, exc)
                raise
            finally:
                call.end(started, code)

        make = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return make(unary_response, **kwargs)

    inner_stream = handler.unary_stream or handler.stream_stream

    async def stream_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started, code = time.perf_counter(), grpc.StatusCode.OK
        try:
            call.begin()
            if isinstance(request, Message):
                check_request(request)
            async for item in inner_stream(request, context):
                yield item
        except BaseException as exc:
            code = _classify(exc, context)
            await _abort_for(call, context, code, exc)
            raise
        finally:
            call.end(started, code)

    make = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return make(stream_response, **kwargs)
