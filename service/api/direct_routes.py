"""Upload predictions straight to their endpoint, ahead of FastAPI's routing and dependencies.

For a cached prediction of a small image, FastAPI's walk over the app's routes and its
dependency solving cost about as much as decoding the image and running the network
together (~0.35 ms of 1.2 ms here). ``POST /predict/{name}`` without a query string is the
request a serving deployment answers most; a ``DirectRoute`` for each upload route sits first
in the app's routes and calls the same endpoint with what its dependencies give: the API key
checked by ``require_api_key`` itself, the app's model cache, no ``job_id`` or ``alias``.
Requests with a query string, and every other method, take the usual way, so validation
errors, 405s and the docs stay FastAPI's.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from torchkiln.service.api.deps import bearer_credentials, require_api_key
from torchkiln.service.api.serving.predictions import ModelCache
from torchkiln.service.store.settings import Settings


class DirectRoute(BaseRoute):
    """``route``'s endpoint for a POST without a query string; no match for anything else."""

    def __init__(self, route: APIRoute, settings: Settings, cache: ModelCache) -> None:
        self.route, self.settings, self.cache = route, settings, cache
        self.path = self.path_format = route.path

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        is_direct = (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == self.path
            and not scope.get("root_path")
            and not scope["query_string"]
        )
        return (Match.FULL, {"route": self.route}) if is_direct else (Match.NONE, {})

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # url_for finds the APIRoute itself

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if self.settings.api_key is not None:
            await require_api_key(self.settings, await bearer_credentials(request))
        response = await self.route.endpoint(request, self.cache)
        await response(scope, receive, send)
