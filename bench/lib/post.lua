-- wrk script: POST one JSON body (from the BODY environment variable) on every
-- request, and print the latency percentiles and counts as one JSON line.
wrk.method = "POST"
wrk.body = os.getenv("BODY") or '{"device_id":"d1","lat":37.5,"lon":127.0}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("API_KEY")
if key then wrk.headers["x-api-key"] = key end

-- A body with __TS__ gets a timestamp that grows with every request, so every
-- record is distinct (as real GPS fixes are; an output deriving ids from the
-- content must not see the same document again and again).
local head, tail = wrk.body:match("^(.*)__TS__(.*)$")
if head then
  local ts = 1764000000000
  function init(args)
    ts = ts + (tonumber(wrk.thread:get("id") or "0") or 0) * 1000000000
  end
  function request()
    ts = ts + 1
    return wrk.format(nil, nil, nil, head .. ts .. tail)
  end
end

local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
if delay_ms > 0 then
  function delay() return delay_ms end
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, non2xx, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
