"""Validation of alert-configuration bodies (rest-api.md §2.13) into SaveAlertConfig requests.

Every key is accepted in snake_case and camelCase; the first invalid indicator is reported with
its index, field and reason. Defaults and merging are the writer's job.
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

from services.common.proto.raceday.v1 import query_pb2
from services.gateway.errors import ApiError, bad_request
from services.gateway.params import DEFAULT_USER, MAX_USER_ID_CHARS, camel_case

INDICATOR_TYPE: Final = "percentage_range"
MAX_INDICATORS: Final = 6
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
_MISSING: Final = object()


class _InvalidFieldError(ValueError):
    """One invalid field of one indicator."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason

    def body_error(self) -> ApiError:
        """The 400 for an invalid top-level body field."""
        return bad_request("Invalid JSON body", field=self.field, reason=self.reason)


def pick(document: Mapping[str, Any], name: str, *aliases: str) -> Any:
    """The value under `name` or its camelCase spelling (or extra aliases); `_MISSING` if absent.

    Raises _InvalidFieldError when two spellings carry different values.
    """
    found: Any = _MISSING
    for key in dict.fromkeys((name, camel_case(name), *aliases)):
        if key in document:
            value = document[key]
            if found is not _MISSING and found != value:
                raise _InvalidFieldError(name, f"conflicting values for {name} and {key}")
            found = value
    return found


def parse_bool(value: Any, field: str) -> bool:
    """A JSON boolean, or the strings "true"/"false" in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _InvalidFieldError(field, "must be a boolean")


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _InvalidFieldError(field, "must be a number")
    if not 0 <= value <= 100:
        raise _InvalidFieldError(field, "must be between 0 and 100")
    return float(value)


def normalise_user_id(value: Any, field: str = "user_id") -> str:
    """Trimmed user id, at most 100 characters; empty means the default user."""
    if value is _MISSING or value is None:
        return DEFAULT_USER
    if not isinstance(value, str):
        raise _InvalidFieldError(field, "must be a string")
    value = value.strip()
    if not value.isprintable():
        raise _InvalidFieldError(field, "must not contain control characters")
    if len(value) > MAX_USER_ID_CHARS:
        raise _InvalidFieldError(field, f"must be at most {MAX_USER_ID_CHARS} characters")
    return value or DEFAULT_USER


def _indicator(item: Any, user_id: str) -> tuple[query_pb2.AlertIndicator, bool | None]:
    """One validated indicator and its optional audible flag."""
    if not isinstance(item, Mapping):
        raise _InvalidFieldError("indicator", "must be a JSON object")
    indicator = query_pb2.AlertIndicator(user_id=user_id, indicator_type=INDICATOR_TYPE)

    requested_id = pick(item, "indicator_id", "$id")
    if isinstance(requested_id, str):
        # Only a UUID is used as a requested id; anything else is ignored.
        with contextlib.suppress(ValueError):
            indicator.indicator_id = str(uuid.UUID(requested_id.strip()))

    own_user = pick(item, "user_id")
    if own_user is not _MISSING and own_user is not None and normalise_user_id(own_user) != user_id:
        raise ApiError(400, "All indicators must target the same user_id")

    kind = pick(item, "indicator_type")
    if kind not in (_MISSING, None) and (not isinstance(kind, str) or kind.strip().lower() != INDICATOR_TYPE):
        raise _InvalidFieldError("indicator_type", f"must be {INDICATOR_TYPE}")

    minimum = pick(item, "percentage_range_min")
    if minimum is _MISSING or minimum is None:
        raise _InvalidFieldError("percentage_range_min", "is required")
    indicator.percentage_range_min = _number(minimum, "percentage_range_min")

    maximum = pick(item, "percentage_range_max")
    if maximum is not _MISSING and maximum is not None:
        indicator.percentage_range_max = _number(maximum, "percentage_range_max")
        if indicator.percentage_range_max <= indicator.percentage_range_min:
            raise _InvalidFieldError("percentage_range_max", "must be greater than percentage_range_min")

    color = pick(item, "color")
    if color is _MISSING or color is None:
        raise _InvalidFieldError("color", "is required")
    if not isinstance(color, str) or not _COLOR.fullmatch(color.strip()):
        raise _InvalidFieldError("color", "must be #RRGGBB")
    indicator.color = color.strip().upper()

    is_default = pick(item, "is_default")
    indicator.is_default = False if is_default in (_MISSING, None) else parse_bool(is_default, "is_default")
    enabled = pick(item, "enabled")
    indicator.enabled = True if enabled in (_MISSING, None) else parse_bool(enabled, "enabled")

    order = pick(item, "display_order")
    if order is _MISSING or order is None:
        raise _InvalidFieldError("display_order", "is required")
    if isinstance(order, bool) or not isinstance(order, int | float) or not float(order).is_integer():
        raise _InvalidFieldError("display_order", "must be an integer")
    if not 1 <= order <= MAX_INDICATORS:
        raise _InvalidFieldError("display_order", "must be between 1 and 6")
    indicator.display_order = int(order)

    audible = pick(item, "audible_alerts_enabled")
    flag = None if audible in (_MISSING, None) else parse_bool(audible, "audible_alerts_enabled")
    return indicator, flag


def save_request(body: Any) -> query_pb2.SaveAlertConfigRequest:
    """Validate a POST body into the writer's request, or raise the contract's 400."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "Invalid JSON body")
    try:
        user_value = pick(body, "user_id")
        audible_value = pick(body, "audible_alerts_enabled")
    except _InvalidFieldError as exc:
        raise exc.body_error() from None
    indicators = body.get("indicators", _MISSING)
    if not isinstance(indicators, list) or not indicators:
        raise ApiError(400, "indicators array is required")
    try:
        if user_value in (_MISSING, None) and isinstance(indicators[0], Mapping):
            # No body-level user: the indicators name it (all of them must agree).
            user_value = pick(indicators[0], "user_id")
        user_id = normalise_user_id(user_value)
        audible = (
            None if audible_value in (_MISSING, None) else parse_bool(audible_value, "audible_alerts_enabled")
        )
    except _InvalidFieldError as exc:
        raise exc.body_error() from None
    if len(indicators) > MAX_INDICATORS:
        raise bad_request(
            "Invalid indicator payload",
            index=MAX_INDICATORS,
            field="indicators",
            reason="at most 6 indicators",
        )

    request = query_pb2.SaveAlertConfigRequest(user_id=user_id)
    seen_orders: set[int] = set()
    for index, item in enumerate(indicators):
        try:
            indicator, flag = _indicator(item, user_id)
        except _InvalidFieldError as exc:
            raise bad_request(
                "Invalid indicator payload", index=index, field=exc.field, reason=exc.reason
            ) from None
        if indicator.display_order in seen_orders:
            raise bad_request("Duplicate display_order", display_order=indicator.display_order)
        seen_orders.add(indicator.display_order)
        if audible is None and flag is not None:
            audible = flag
        request.indicators.append(indicator)
    if audible is not None:
        request.audible_alerts_enabled = audible
    return request


def reset_user(body: Any, query_user: str | None) -> str:
    """The user of a reset: from the body (either spelling), else the query, else the default."""
    if body is not None:
        if not isinstance(body, Mapping):
            raise ApiError(400, "Invalid JSON body")
        try:
            value = pick(body, "user_id")
            if value not in (_MISSING, None):
                return normalise_user_id(value)
        except _InvalidFieldError as exc:
            raise exc.body_error() from None
    return query_user or DEFAULT_USER
