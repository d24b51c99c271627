-- The atomic "take one token" of the shared rate-limit store (`rate_limits.store: shared`),
-- with the same semantics as the gateway's in-process `quota::store::LocalBuckets::take`.
--
-- KEYS[1]  the bucket: "<key_prefix>rl:{<rule>}:<hex sha256 of the parts>" (the subject,
--          server and tool the rule's `per` names; the same on every replica; the hash tag
--          keeps one rule's buckets on one Redis Cluster slot)
-- ARGV[1]  capacity (the rule's burst), tokens, a number
-- ARGV[2]  refill rate, tokens per second, a number
-- ARGV[3]  tokens to take (1)
--
-- The clock is Redis's own (TIME), never the replicas': replicas with skewed clocks still
-- share one bucket correctly.
--
-- Returns { allowed (1|0), retry_after_ms (0 when allowed), tokens_left_times_1000 }.
-- A bucket that has not been touched is full. The key expires when the bucket would be full
-- again, so idle buckets cost nothing.

local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local want = tonumber(ARGV[3])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end

local elapsed = math.max(0, now - at) / 1000
tokens = math.min(capacity, tokens + elapsed * rate)

local allowed = 0
local retry_ms = 0
if tokens >= want then
  tokens = tokens - want
  allowed = 1
else
  retry_ms = math.ceil((want - tokens) / rate * 1000)
end

local full_in_ms = math.ceil((capacity - tokens) / rate * 1000)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.max(1, full_in_ms))

return { allowed, retry_ms, math.floor(tokens * 1000) }
