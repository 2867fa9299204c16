"""The SDK's pure pieces: the drop-oldest buffer, backoff, deterministic sampling, prices."""

from __future__ import annotations

import random
import uuid

import pytest

from trulayer_sdk.backoff import Backoff
from trulayer_sdk.buffer import DropOldestBuffer
from trulayer_sdk.pricing import ModelPrice, cost_of, price_of
from trulayer_sdk.sampling import sampled


def test_buffer_drops_the_oldest_and_counts() -> None:
    buffer: DropOldestBuffer[int] = DropOldestBuffer(3)
    assert [buffer.add(i) for i in range(5)] == [0, 0, 0, 1, 1]
    assert buffer.overflowed == 2
    assert buffer.take(10) == [2, 3, 4]
    for i in range(3):
        buffer.add(10 + i)
    # A failed batch goes back in front; what no longer fits is the oldest: the batch itself.
    assert buffer.put_back([7, 8]) == 2
    assert buffer.take(10) == [10, 11, 12] and buffer.overflowed == 4
    buffer.add(1)
    assert buffer.put_back([0]) == 0 and buffer.take(10) == [0, 1]
    with pytest.raises(ValueError):
        DropOldestBuffer(0)


def test_buffer_takes_runs_of_one_kind() -> None:
    buffer: DropOldestBuffer[str] = DropOldestBuffer(10)
    for item in ["t1", "t2", "f1", "t3"]:
        buffer.add(item)
    same = lambda a, b: a[0] == b[0] == "t"  # noqa: E731
    assert buffer.take(10, same) == ["t1", "t2"]
    assert buffer.take(10, same) == ["f1"]
    assert buffer.take(10, same) == ["t3"]
    assert buffer.clear() == 0


def test_backoff_is_exponential_jittered_capped_and_honours_retry_after() -> None:
    backoff = Backoff(base=0.5, cap=8.0, rng=random.Random(1))
    ceilings = [0.5, 1, 2, 4, 8, 8, 8]
    delays = [backoff.next_delay() for _ in ceilings]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered
    assert backoff.next_delay(retry_after=5) >= 5
    assert backoff.next_delay(retry_after=1000) <= 8.0  # a server cannot park the SDK forever
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_sampling_is_deterministic_and_keeps_its_rate() -> None:
    ids = [str(uuid.UUID(int=random.Random(7).getrandbits(128) + i)) for i in range(20_000)]
    kept = [i for i in ids if sampled(i, 0.25)]
    assert 0.23 < len(kept) / len(ids) < 0.27
    assert kept == [i for i in ids if sampled(i, 0.25)]  # the same ids, every time
    assert set(kept) <= {i for i in ids if sampled(i, 0.5)}  # a higher rate keeps a superset
    assert all(sampled(i, 1.0) for i in ids[:100]) and not any(sampled(i, 0.0) for i in ids[:100])


def test_prices_match_the_longest_model_name() -> None:
    assert price_of("gpt-4o-2024-08-06") == price_of("gpt-4o") == ModelPrice(2.50, 10.00)
    assert price_of("gpt-4o-mini-2024-07-18") == ModelPrice(0.15, 0.60)
    assert price_of("gpt-4o2") is None and price_of("my-model") is None and price_of(None) is None
    assert cost_of("gpt-4o", 1_000, 100) == pytest.approx(0.0035)
    assert cost_of("gpt-4o", None, 100) is None
    assert cost_of("mine", 10, 10, {"mine": ModelPrice(1.0, 2.0)}) == pytest.approx(0.00003)
