"""Request batching: concurrent predictions of one version share forward passes.

The Batcher on its own (a real network, a real event loop), then through the app: several
``POST /predict/mnist`` at once on one loop, as uvicorn interleaves connections, counted by
``torchkiln_predict_batch_size`` on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import torch
from PIL import Image

from tests.models.image_factory import encode, one, seven
from tests.utils.prometheus_text import sample
from tests.utils.seeded_jobs import seed_mlp_job
from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import Batching
from torchkiln.service.api.app import create_app
from torchkiln.service.api.serving.batching import Batcher, batching_policy
from torchkiln.service.store.settings import Settings

BATCH_SIZE = "torchkiln_predict_batch_size"


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    spec = REGISTRY["mnist_mlp"]
    torch.manual_seed(0)
    return spec.build(spec.options()).eval()


def samples(count: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 1, 28, 28, generator=generator) for _ in range(count)]


def alone(network: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return network(batch)


def counted(network: torch.nn.Module, policy: Batching | None) -> tuple[Batcher, list[int]]:
    sizes: list[int] = []
    return Batcher(network, policy, sizes.append), sizes


def run_together(*calls: Callable[[], Awaitable[torch.Tensor]]) -> list[Any]:
    """Start every call in the same pass of one event loop; results or exceptions, in order."""

    async def main() -> list[Any]:
        return await asyncio.gather(*(call() for call in calls), return_exceptions=True)

    return asyncio.run(main())


def test_concurrent_requests_share_one_forward_pass(network: torch.nn.Module) -> None:
    batcher, sizes = counted(network, Batching(max_size=32))
    inputs = samples(8)
    outputs = run_together(*(lambda x=x: batcher.run(x) for x in inputs))
    assert sizes == [8]
    for x, output in zip(inputs, outputs, strict=True):
        # A batched matrix product may round differently from a single row's, in the last bit.
        torch.testing.assert_close(output, alone(network, x), rtol=1e-5, atol=1e-6)
        assert output.argmax() == alone(network, x).argmax()


def test_a_lone_request_runs_in_its_own_pass_without_a_timer(
    network: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    batcher, sizes = counted(network, Batching(max_size=32, max_wait_s=0.05))
    (x,) = samples(1)

    async def lone() -> torch.Tensor:
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "call_later", lambda *args: pytest.fail("a timer was set"))
        return await batcher.run(x)

    assert torch.equal(asyncio.run(lone()), alone(network, x))
    assert sizes == [1]


def test_batches_hold_at_most_max_size_samples(network: torch.nn.Module) -> None:
    batcher, sizes = counted(network, Batching(max_size=2))
    inputs = [*samples(3), torch.randn(3, 1, 28, 28)]  # the last request alone is over the max
    outputs = run_together(*(lambda x=x: batcher.run(x) for x in inputs))
    assert sizes == [2, 1, 3]
    assert [len(output) for output in outputs] == [1, 1, 1, 3]


def test_a_bad_request_fails_alone(network: torch.nn.Module) -> None:
    batcher, sizes = counted(network, Batching())
    good = samples(2)
    wrong = torch.randn(1, 1, 27, 27)  # no shape the network takes; cannot join the batch
    outcomes = run_together(*(lambda x=x: batcher.run(x) for x in [good[0], wrong, good[1]]))
    assert isinstance(outcomes[1], RuntimeError)
    for x, outcome in zip(good, outcomes[::2], strict=True):
        assert torch.equal(outcome, alone(network, x))
    assert sizes == [1, 1]  # after the shared pass failed: one at a time, the bad one failing


def test_a_cancelled_request_leaves_the_others_their_answers(network: torch.nn.Module) -> None:
    batcher, sizes = counted(network, Batching())
    first, second = samples(2)

    async def main() -> torch.Tensor:
        cancelled = asyncio.ensure_future(batcher.run(first))
        kept = asyncio.ensure_future(batcher.run(second))
        await asyncio.sleep(0)  # both queued
        cancelled.cancel()
        return await kept

    assert torch.equal(asyncio.run(main()), alone(network, second))
    assert sizes == [1]


def test_a_queued_request_waits_for_one_still_decoding(network: torch.nn.Module) -> None:
    batcher, sizes = counted(network, Batching(max_wait_s=5.0))
    slow, quick = samples(2)
    decoding = threading.Event()

    def build() -> torch.Tensor:
        decoding.wait(timeout=30)
        return slow

    async def main() -> list[torch.Tensor]:
        decoded = asyncio.ensure_future(batcher.run_built(build))
        await asyncio.sleep(0.01)  # the slow one is in its worker thread now
        queued = asyncio.ensure_future(batcher.run(quick))
        await asyncio.sleep(0.05)
        assert not queued.done()  # held for the one still decoding, within max_wait_s
        decoding.set()
        return list(await asyncio.gather(decoded, queued))

    outputs = asyncio.run(main())
    assert sizes == [2]
    torch.testing.assert_close(outputs[1], alone(network, quick), rtol=1e-5, atol=1e-6)


def test_the_wait_for_a_decode_is_bounded(network: torch.nn.Module) -> None:
    batcher, sizes = counted(network, Batching(max_wait_s=0.02))
    (quick,) = samples(1)
    release = threading.Event()

    def stuck() -> torch.Tensor:
        release.wait(timeout=30)
        raise ValueError("undecodable")

    async def main() -> torch.Tensor:
        decoding = asyncio.ensure_future(batcher.run_built(stuck))
        await asyncio.sleep(0.01)
        answer = await batcher.run(quick)  # after max_wait_s, though the decode goes on
        release.set()
        with pytest.raises(ValueError):
            await decoding
        return answer

    assert torch.equal(asyncio.run(main()), alone(network, quick))
    assert sizes == [1]


def test_without_a_policy_each_request_runs_at_once(network: torch.nn.Module) -> None:
    batcher, sizes = counted(network, None)
    inputs = samples(3)
    outputs = run_together(*(lambda x=x: batcher.run(x) for x in inputs))
    assert sizes == [1, 1, 1]
    assert all(torch.equal(o, alone(network, x)) for x, o in zip(inputs, outputs, strict=True))


@pytest.mark.parametrize(
    ("mode", "model", "expected"),
    [
        ("auto", "mnist_mlp", Batching(max_size=32)),
        ("auto", "linear", None),
        ("on", "linear", Batching()),
        ("off", "mnist_mlp", None),
    ],
)
def test_the_policy_comes_from_the_model_and_the_settings(
    settings: Settings, mode: str, model: str, expected: Batching | None
) -> None:
    chosen = settings.model_copy(update={"batching": mode})
    assert batching_policy(REGISTRY[model], chosen) == expected


def test_the_size_and_wait_settings_override_the_models(settings: Settings) -> None:
    chosen = settings.model_copy(update={"batch_max_size": 4, "batch_max_wait_s": 0.0})
    assert batching_policy(REGISTRY["mnist_cnn"], chosen) == Batching(4, 0.0)


def digit_pngs() -> list[bytes]:
    images = [seven(), one(), seven((60, 60)), one((28, 28)), Image.new("L", (28, 28), 0)]
    images[-1].paste(255, (10, 4, 16, 24))
    return [encode(image, "PNG") for image in images]


@pytest.fixture
def served(settings: Settings) -> Iterator[Settings]:
    seed_mlp_job(settings)
    yield settings


def post_together(settings: Settings, bodies: list[bytes]) -> tuple[list[httpx.Response], str]:
    """Every upload at once through one app on one event loop; the answers and /metrics."""

    async def main() -> tuple[list[httpx.Response], str]:
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://kiln") as client:
            await client.get("/healthz")  # routes built, before the requests race
            responses = await asyncio.gather(
                *(
                    client.post("/predict/mnist", files={"file": ("d.png", body, "image/png")})
                    for body in bodies
                )
            )
            return list(responses), (await client.get("/metrics")).text

    return asyncio.run(main())


def test_concurrent_uploads_share_a_forward_pass_and_answer_each(served: Settings) -> None:
    bodies = digit_pngs() * 2
    batched, metrics = post_together(served, bodies)
    assert sample(metrics, f"{BATCH_SIZE}_count", model="mnist_mlp") == 1
    assert sample(metrics, f"{BATCH_SIZE}_sum", model="mnist_mlp") == len(bodies)
    unbatched, metrics = post_together(served.model_copy(update={"batching": "off"}), bodies)
    assert sample(metrics, f"{BATCH_SIZE}_count", model="mnist_mlp") == len(bodies)
    for mine, reference in zip(batched, unbatched, strict=True):
        assert mine.status_code == reference.status_code == 200
        answer, expected = mine.json(), reference.json()
        assert answer["job_id"] == expected["job_id"] and answer["alias"] == "production"
        assert same_predictions(answer["predictions"], expected["predictions"])


def same_predictions(mine: list[dict[str, Any]], reference: list[dict[str, Any]]) -> bool:
    """The same digits in the same order, probabilities equal to float32 rounding."""
    for ours, theirs in zip(mine, reference, strict=True):
        if [t["digit"] for t in ours["top3"]] != [t["digit"] for t in theirs["top3"]]:
            return False
        if abs(ours["probability"] - theirs["probability"]) > 1e-6:
            return False
    return True


def test_a_bad_upload_among_concurrent_ones_fails_alone(served: Settings) -> None:
    good = digit_pngs()
    responses, metrics = post_together(served, [good[0], b"\x89PNG broken", good[1]])
    assert [r.status_code for r in responses] == [200, 422, 200]
    assert "damaged" in responses[1].json()["detail"]
    assert sample(metrics, f"{BATCH_SIZE}_sum", model="mnist_mlp") == 2


def test_a_lone_upload_is_a_batch_of_one(served: Settings) -> None:
    responses, metrics = post_together(served, digit_pngs()[:1])
    assert responses[0].status_code == 200
    assert sample(metrics, f"{BATCH_SIZE}_count", model="mnist_mlp") == 1
    assert sample(metrics, f"{BATCH_SIZE}_bucket", model="mnist_mlp", le="1.0") == 1


def test_a_large_upload_decoded_in_a_thread_is_answered_with_the_rest(served: Settings) -> None:
    noise = Image.effect_noise((400, 400), 64).point(lambda level: 255 - level)
    large = encode(noise, "PNG")
    assert len(large) > 64 * 1024  # decoded off the event loop
    responses, metrics = post_together(served, [*digit_pngs()[:2], large])
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert sample(metrics, f"{BATCH_SIZE}_sum", model="mnist_mlp") == 3
