"""Registering a servicer whose hot methods take and return serialised messages.

The generated `add_XServiceServicer_to_server` always parses requests into Python messages
and serialises responses from them. On the hot path the bytes go straight to the Rust core
instead, so those methods are registered with identity (de)serialisers: the handler receives
the request's wire bytes and may return the response's wire bytes. The other methods of the
service keep their message classes. Method paths, and so the contract, are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor


def add_servicer(
    server: grpc.aio.Server,
    service: ServiceDescriptor,
    servicer: object,
    *,
    raw_requests: Collection[str] = (),
    raw_responses: Collection[str] = (),
) -> None:
    """Register every method of `service` (unary, or streaming responses) implemented by `servicer`.

    Methods named in `raw_requests` receive the request's serialised bytes; those in
    `raw_responses` return serialised bytes.
    """
    unknown = (set(raw_requests) | set(raw_responses)) - {m.name for m in service.methods}
    if unknown:
        raise ValueError(f"{service.full_name} has no method {', '.join(sorted(unknown))}")
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        if method.client_streaming:
            raise ValueError(f"{service.full_name}.{method.name} streams requests: not handled here")
        request_class = message_factory.GetMessageClass(method.input_type)
        deserialize: Callable[[bytes], Any] | None = (
            None if method.name in raw_requests else request_class.FromString
        )
        serialize: Callable[[Any], bytes] | None = None if method.name in raw_responses else _serialize
        implementation = getattr(servicer, method.name, None)
        if implementation is None:
            raise ValueError(
                f"{type(servicer).__name__} does not implement {service.full_name}.{method.name}"
            )
        # A server-streaming method is an async generator of responses.
        make_handler = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make_handler(
            implementation, request_deserializer=deserialize, response_serializer=serialize
        )
    # Registered handlers are looked up without the generic dispatch (as the generated code does).
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data
