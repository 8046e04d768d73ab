"""gRPC client channels: deadlines, retries on UNAVAILABLE, load balancing.

Idempotent calls are retried by the channel itself (gRPC's service-config retry
policy), so callers only choose a deadline. With `round_robin` and a
`dns:///host:port` target, calls spread over every pod behind a headless Service.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

import grpc

from services.common.server import MAX_MESSAGE_BYTES

# Default per-call deadlines, seconds.
DEFAULT_DEADLINE_S = 5.0
HEALTH_DEADLINE_S = 0.5

# A call that failed with one of these met a server that is down, busy or too slow, not a bad
# request: the same call may succeed later (the fetcher's spool and its archive try again).
TRANSIENT_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


def service_config(lb_policy: str, retry_services: Sequence[str]) -> str:
    """The channel's JSON service config: LB policy plus a retry policy for UNAVAILABLE."""
    config = {
        "loadBalancingConfig": [{lb_policy: {}}],
        "methodConfig": [
            {
                "name": [{"service": name} for name in retry_services],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
    return json.dumps(config)


def create_channel(
    target: str, *, lb_policy: str = "pick_first", retry_services: Sequence[str] = ()
) -> grpc.aio.Channel:
    """An insecure asyncio channel to `target` with retries for the listed (idempotent) services."""
    options: list[tuple[str, str | int]] = [
        ("grpc.service_config", service_config(lb_policy, retry_services)),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
    ]
    return grpc.aio.insecure_channel(target, options=options)
