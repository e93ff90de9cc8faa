-- What the bench's wrk scripts share; each loads it from beside its own
-- folder, wherever it is run from:
--   dofile((debug.getinfo(1, "S").source:match("^@(.*)/") or ".") .. "/../lib/wrk_common.lua")

-- A 503 (a queue is full: the output is the limit) makes the next request
-- wait BACKOFF_MS (default `default_ms`), as the app honours Retry-After;
-- without it wrk keeps sending bodies that are refused, on the core the
-- peers need. 0 turns it off.
function backoff_on_503(default_ms)
  local backoff_ms = tonumber(os.getenv("BACKOFF_MS") or tostring(default_ms))
  if backoff_ms <= 0 then return end
  local backoff = 0
  function response(status, headers, body)
    if status == 503 then
      backoff = backoff_ms
    end
  end
  function delay()
    local d = backoff
    backoff = 0
    return d
  end
end

-- The counts and latency percentiles as the one WRK_JSON line benchlib.wrk reads.
function done(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout, latency:percentile(50),
    latency:percentile(99), latency:percentile(99.9), latency.max))
  -- WRK_HIST=1: every latency seen (us) with its count, so that runs can be
  -- pooled (benchlib.pooled_percentile). latency(i) is the i-th distinct
  -- value and its count; past the last one the value is 0 (and the count
  -- is not to be trusted).
  if os.getenv("WRK_HIST") == "1" then
    local parts = {}
    local i = 1
    while true do
      local v, n = latency(i)
      if v == 0 or v > latency.max then break end
      parts[#parts + 1] = string.format("%d:%d", v, n)
      i = i + 1
    end
    io.write("WRK_HIST " .. table.concat(parts, ",") .. "\n")
  end
end
