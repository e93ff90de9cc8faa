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

dofile((debug.getinfo(1, "S").source:match("^@(.*)/") or ".") .. "/../lib/wrk_common.lua")  -- done(): the WRK_JSON line
