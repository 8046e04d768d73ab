"""Which module builds each service: `raceday serve <service>` and `raceday up` use this map."""

from __future__ import annotations

import importlib
import types
from typing import Protocol

from services.common.config import Env
from services.common.server import ServiceApp
from services.common.settings import ServiceName

_FACTORIES: dict[ServiceName, str] = {
    "fetcher": "services.fetcher.app",
    "transformer": "services.transformer.app",
    "writer": "services.writer.app",
    "gateway": "services.gateway.app",
}


class _AppModule(Protocol):
    def create_app(self, env: Env) -> ServiceApp: ...


def service_module(service: ServiceName) -> types.ModuleType:
    """The module that builds the service (importing it registers the service's metrics)."""
    return importlib.import_module(_FACTORIES[service])


def create_app(service: ServiceName, env: Env) -> ServiceApp:
    """Build the service's app from the environment (raises ConfigError on bad settings)."""
    module: _AppModule = service_module(service)
    return module.create_app(env)
