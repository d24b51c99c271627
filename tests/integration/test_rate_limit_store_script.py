"""The shared rate-limit store's atomic take (crates/mcpgate-store/src/take.lua), run on a
real Redis: the semantics the cluster store must give `rate_limits.store: shared` (the same as
the in-process buckets), checked before any gateway uses it."""

from __future__ import annotations

import shutil
import time

import pytest
from harness import REPO, free_port, wait_until

SCRIPT = (REPO / "crates" / "mcpgate-store" / "src" / "take.lua").read_text()


@pytest.fixture
def redis_client(registry):
    binary = shutil.which("redis-server")
    if binary is None:
        if __import__("os").environ.get("CI"):
            pytest.fail("redis-server is not installed (.ci/run installs it)")
        pytest.skip("redis-server is not installed: apt-get install redis-server")
    import redis

    port = free_port()
    registry.start("redis", [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"])
    client = redis.Redis(host="127.0.0.1", port=port)
    wait_until(lambda: client.ping(), 10, what="redis")
    return client


def test_two_replicas_sharing_one_bucket_get_exactly_its_burst(redis_client):
    take = redis_client.register_script(SCRIPT)
    key = "mcpgate:rl:{github-per-user}:abc"
    # Two "replicas" (two connections) take from one bucket of 3 tokens refilled at 1 per hour.
    other = type(redis_client)(connection_pool=type(redis_client.connection_pool)(**redis_client.connection_pool.connection_kwargs))
    answers = [take(keys=[key], args=[3, 1 / 3600, 1], client=c) for c in (redis_client, other, redis_client, other, redis_client)]
    assert [a[0] for a in answers] == [1, 1, 1, 0, 0], "together they get the burst, no more"
    assert 3_590_000 < answers[3][1] <= 3_600_000, "retry after about one token's refill time"
    assert answers[2][2] == 0, "no tokens left"
    ttl = redis_client.pttl(key)
    assert 0 < ttl <= 3 * 3_600_000, "the key expires when the bucket is full again"


def test_a_bucket_refills_at_its_rate_and_keys_are_independent(redis_client):
    take = redis_client.register_script(SCRIPT)
    assert take(keys=["b1"], args=[1, 20, 1])[0] == 1
    assert take(keys=["b1"], args=[1, 20, 1])[0] == 0
    assert take(keys=["b2"], args=[1, 20, 1])[0] == 1, "another key has its own bucket"
    # 20 tokens a second: one is back after 50 ms (waiting is the test's subject here, not a
    # timing assertion: anything longer than 50 ms must allow).
    time.sleep(0.06)
    assert take(keys=["b1"], args=[1, 20, 1])[0] == 1
