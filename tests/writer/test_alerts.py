"""Alert configuration: defaults without side effects, upserts by (user, display order), reset."""

from __future__ import annotations

import uuid

import grpc
import pytest

from services.common.proto.raceday.v1 import query_pb2
from services.writer.db import Database
from services.writer.queries.alerts import DEFAULT_INDICATOR_NAMESPACE
from tests.writer.builder import fetch, scalar
from tests.writer.conftest import Stubs


def indicator(
    order: int, low: float, high: float | None, color: str, **extra: object
) -> query_pb2.AlertIndicator:
    fields: dict[str, object] = {"enabled": True, **extra}
    item = query_pb2.AlertIndicator(
        display_order=order,
        percentage_range_min=low,
        color=color,
        **fields,  # type: ignore[arg-type]
    )
    if high is not None:
        item.percentage_range_max = high
    return item


async def test_defaults_are_served_without_being_stored(stubs: Stubs, db: Database) -> None:
    config = (await stubs.query.GetAlertConfig(query_pb2.GetAlertConfigRequest(user_id="  "))).config
    assert config.user_id == "Default User" and config.audible_alerts_enabled
    assert [(i.display_order, i.percentage_range_min, i.color) for i in config.indicators] == [
        (1, 5, "#E5E7EB"),
        (2, 10, "#BFDBFE"),
        (3, 15, "#FEF3C7"),
        (4, 20, "#BBF7D0"),
        (5, 25, "#FECACA"),
        (6, 50, "#F3E8FF"),
    ]
    assert [i.percentage_range_max for i in config.indicators[:5]] == [10, 15, 20, 25, 50]
    assert not config.indicators[5].HasField("percentage_range_max")
    assert all(i.is_default and i.enabled and not i.HasField("created_at") for i in config.indicators)
    assert config.indicators[0].indicator_id == str(uuid.uuid5(DEFAULT_INDICATOR_NAMESPACE, "Default User:1"))
    again = (await stubs.query.GetAlertConfig(query_pb2.GetAlertConfigRequest(user_id="Default User"))).config
    assert again == config
    assert await scalar(db, "SELECT count(*) FROM user_alert_configs") == 0
    assert await scalar(db, "SELECT count(*) FROM user_alert_settings") == 0


async def test_save_upserts_by_display_order_and_reset_keeps_audible(stubs: Stubs, db: Database) -> None:
    requested = str(uuid.uuid4())
    saved = (
        await stubs.query.SaveAlertConfig(
            query_pb2.SaveAlertConfigRequest(
                user_id="alice",
                audible_alerts_enabled=False,
                indicators=[
                    indicator(1, 4, 9, "#abcdef", enabled=False),
                    indicator(2, 10, 15, "#BFDBFE", indicator_id=requested),
                    indicator(6, 60, None, "#F3E8FF"),
                ],
            )
        )
    ).config
    assert not saved.audible_alerts_enabled
    one, two, three = saved.indicators[0], saved.indicators[1], saved.indicators[2]
    assert (one.percentage_range_min, one.color, one.enabled, one.is_default) == (4, "#ABCDEF", False, False)
    assert one.HasField("created_at") and two.indicator_id == requested
    assert three.is_default and three.indicator_id == str(uuid.uuid5(DEFAULT_INDICATOR_NAMESPACE, "alice:3"))
    assert saved.indicators[5].percentage_range_min == 60 and not saved.indicators[5].HasField(
        "percentage_range_max"
    )
    # Saving order 1 again keeps its id even when another id is requested; a taken id is not reused.
    other = (
        await stubs.query.SaveAlertConfig(
            query_pb2.SaveAlertConfigRequest(
                user_id="alice", indicators=[indicator(1, 5, 10, "#E5E7EB", indicator_id=str(uuid.uuid4()))]
            )
        )
    ).config
    assert other.indicators[0].indicator_id == one.indicator_id and other.indicators[0].enabled
    assert not other.audible_alerts_enabled  # not mentioned: unchanged
    bob = (
        await stubs.query.SaveAlertConfig(
            query_pb2.SaveAlertConfigRequest(
                user_id="bob", indicators=[indicator(3, 1, 2, "#000000", indicator_id=requested)]
            )
        )
    ).config
    assert bob.indicators[2].indicator_id != requested
    assert await scalar(db, "SELECT count(*) FROM user_alert_configs WHERE user_id = 'alice'") == 3
    reset = (await stubs.query.ResetAlertConfig(query_pb2.ResetAlertConfigRequest(user_id="alice"))).config
    assert all(i.is_default for i in reset.indicators) and not reset.audible_alerts_enabled
    assert await fetch(db, "SELECT user_id FROM user_alert_configs") == [("bob",)]


@pytest.mark.parametrize(
    ("items", "user", "message"),
    [
        ([indicator(7, 1, 2, "#000000")], "u", "display_order"),
        ([indicator(1, 5, 5, "#000000")], "u", "percentage_range_max"),
        ([indicator(1, 5, None, "red")], "u", "color"),
        (
            [indicator(1, 5, None, "#000000"), indicator(1, 6, None, "#000000")],
            "u",
            "Duplicate display_order",
        ),
        ([indicator(1, 5, None, "#000000", user_id="someone-else")], "u", "same user_id"),
        ([indicator(1, 5, None, "#000000", indicator_type="threshold")], "u", "indicator_type"),
        ([], "u", "indicators"),
        ([indicator(1, 5, None, "#000000")], "x" * 101, "user_id"),
    ],
)
async def test_invalid_saves_are_rejected(
    stubs: Stubs, db: Database, items: list[query_pb2.AlertIndicator], user: str, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stubs.query.SaveAlertConfig(query_pb2.SaveAlertConfigRequest(user_id=user, indicators=items))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (failure.value.details() or "")
    assert await scalar(db, "SELECT count(*) FROM user_alert_configs") == 0
