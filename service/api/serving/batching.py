"""Concurrent predictions of one model version, coalesced into one forward pass.

The MNIST MLP reads all 2.3 MB of its weights on every forward pass, whatever the batch: one
sample costs about as much as eight. Under load several requests are decoded in each pass of
the event loop, and they can share one forward pass instead of running one each.

A ``Batcher`` belongs to one loaded network and lives on the event loop (every call is made
there, so it needs no lock). Each request queues its samples and awaits its own rows of the
output. The queue runs as one batch:

- at the end of the loop's current pass: every request whose bytes arrived with this one has
  been decoded by then, and a lone request runs in the pass it came in, with no timer;
- at once when it holds ``max_size`` samples;
- while a request for the same network is still being decoded in a worker thread, at most
  ``max_wait_s`` after the first one queued, so that one can join.

A failing batch is retried one request at a time, so one bad request fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import torch
from starlette.concurrency import run_in_threadpool
from torch import nn

from torchkiln.models.common.registry import Batching, ModelSpec
from torchkiln.service.store.settings import Settings

BatchObserver = Callable[[int], None]
_Queued = tuple[torch.Tensor, asyncio.Future[torch.Tensor]]


def batching_policy(spec: ModelSpec, settings: Settings) -> Batching | None:
    """The model's own policy (``TORCHKILN_BATCHING=auto``), or every model's (``on``: the
    model's or the defaults) or none (``off``); the max size and wait settings override."""
    if settings.batching == "off":
        return None
    policy = spec.batching if settings.batching == "auto" else spec.batching or Batching()
    if policy is None:
        return None
    max_wait_s = settings.batch_max_wait_s
    return Batching(
        max_size=settings.batch_max_size or policy.max_size,
        max_wait_s=policy.max_wait_s if max_wait_s is None else max_wait_s,
    )


class Batcher:
    """Runs ``module`` on each request's batch, sharing forward passes where ``policy`` says.

    Without a policy every request runs alone, at once, wherever it calls from.
    ``observe(samples)`` is told the size of every forward pass.
    """

    def __init__(
        self, module: nn.Module, policy: Batching | None, observe: BatchObserver | None = None
    ) -> None:
        self.module, self.policy = module, policy
        self.observe = observe
        self._queue: list[_Queued] = []
        self._samples = 0
        self._decoding = 0  # requests of this network being decoded in worker threads
        self._flush: asyncio.Handle | None = None
        self._is_timed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, batch: torch.Tensor) -> torch.Tensor:
        """The network's output for ``batch``, perhaps computed in a batch with others'."""
        if self.policy is None:
            return self.forward(batch)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (a test's next client): nothing carries over
            self._queue, self._samples, self._flush, self._loop = [], 0, None, loop
        samples = batch.shape[0]
        if self._queue and self._samples + samples > self.policy.max_size:
            self.run_queue()  # full: this request starts the next batch
        future: asyncio.Future[torch.Tensor] = loop.create_future()
        self._queue.append((batch, future))
        self._samples += samples
        if self._samples >= self.policy.max_size:
            self.run_queue()
        elif self._flush is None or self._is_timed:
            self._schedule(loop)
        return await future

    async def run_built(self, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``run`` on the batch ``build()`` makes in a worker thread (slow decoding)."""
        if self.policy is None:
            return await run_in_threadpool(lambda: self.forward(build()))
        self._decoding += 1
        try:
            batch = await run_in_threadpool(build)
        finally:
            self._decoding -= 1
        return await self.run(batch)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            outputs = self.module(batch)
        if self.observe is not None:
            self.observe(batch.shape[0])
        return outputs

    def run_queue(self) -> None:
        """Run everything queued as one batch and hand each request its rows."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        queued = [(batch, future) for batch, future in self._queue if not future.done()]
        self._queue, self._samples = [], 0
        if len(queued) == 1:
            batch, future = queued[0]
            try:
                future.set_result(self.forward(batch))
            except Exception as error:
                future.set_exception(error)
            return
        if not queued:
            return
        try:
            outputs = self.forward(torch.cat([batch for batch, _ in queued]))
        except Exception:
            self._run_each(queued)
            return
        start = 0
        for batch, future in queued:
            end = start + batch.shape[0]
            future.set_result(outputs[start:end])
            start = end

    def _run_each(self, queued: list[_Queued]) -> None:
        """One request at a time: a batch failed, and only the requests at fault may fail."""
        for batch, future in queued:
            try:
                future.set_result(self.forward(batch))
            except Exception as error:
                future.set_exception(error)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Plan the queue's run: at the end of this pass, or after the wait for decodes."""
        assert self.policy is not None
        is_timed = self._decoding > 0 and self.policy.max_wait_s > 0
        if self._flush is not None:
            if is_timed:
                return
            self._flush.cancel()  # the decodes it waited for are in: no reason to wait on
        self._is_timed = is_timed
        if is_timed:
            self._flush = loop.call_later(self.policy.max_wait_s, self.run_queue)
        else:
            self._flush = loop.call_soon(self.run_queue)
