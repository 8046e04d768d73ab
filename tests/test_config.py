"""Environment configuration is validated with messages naming the variable."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError, Env
from services.common.settings import ServerSettings


def test_ports_come_from_the_service_variables() -> None:
    env = Env({"RACEDAY_TRANSFORMER_PORT": "6001", "RACEDAY_TRANSFORMER_METRICS_PORT": "6002"})
    settings = ServerSettings.from_env("transformer", env)
    assert (settings.grpc_port, settings.metrics_port) == (6001, 6002)
    assert ServerSettings.from_env("transformer", env, port=7000).grpc_port == 7000


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"RACEDAY_WRITER_PORT": "abc"}, "RACEDAY_WRITER_PORT"),
        ({"RACEDAY_WRITER_PORT": "70000"}, "RACEDAY_WRITER_PORT"),
        ({"RACEDAY_LOG_LEVEL": "LOUD"}, "RACEDAY_LOG_LEVEL"),
        ({"RACEDAY_SHUTDOWN_GRACE_S": "nan"}, "RACEDAY_SHUTDOWN_GRACE_S"),
    ],
)
def test_bad_values_name_the_variable(environ: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as error:
        ServerSettings.from_env("writer", Env(environ))
    assert error.value.name == name
    assert str(error.value).startswith(name)


def test_booleans_and_lists() -> None:
    env = Env({"A": "yes", "B": "off", "C": " NZ, AUS ,,", "D": "maybe"})
    assert env.flag("A", False) is True
    assert env.flag("B", True) is False
    assert env.csv("C", ()) == ("NZ", "AUS")
    with pytest.raises(ConfigError, match=r"^D: "):
        env.flag("D", False)
    with pytest.raises(ConfigError, match=r"^E: is required"):
        env.required_text("E")
