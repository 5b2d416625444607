"""Pay an HTTP process's one-time costs at start-up, not on the first requests it answers.

FastAPI builds each route's request handling the first time a request walks the routes,
and the model cache loads a network on its first prediction: together 0.2-0.5 s on the
first prediction a fresh process answered here, paid again by every HTTP process.
"""

from __future__ import annotations

import logging

import httpx
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from torchkiln.models import REGISTRY
from torchkiln.service.api.serving.predictions import ModelCache

logger = logging.getLogger(__name__)

# No route matches it, so the request walks (and so builds) every route before its 404.
UNROUTED_PATH = "/.torchkiln-warm-up"


async def warm_up(app: FastAPI, cache: ModelCache) -> None:
    """Build the routes and preload each trained model's serving network."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://warm-up") as client:
        await client.get(UNROUTED_PATH)
    loaded = await run_in_threadpool(cache.warm, list(REGISTRY))
    if loaded:
        logger.info("preloaded the networks of jobs %s", ", ".join(map(str, loaded)))
