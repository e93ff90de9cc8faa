-- wrk script for bench/redis: every request POSTs a JSON array of RECORDS GPS
-- fixes for DEVICES devices, with a timestamp that grows with every record so
-- that `if_newer` always finds the record newer (the costly path). Prints the
-- same WRK_JSON summary line as bench/lib/post.lua.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = tonumber(os.getenv("RECORDS") or "100")
local devices = tonumber(os.getenv("DEVICES") or "10000")
local prefix = {}
for d = 0, devices - 1 do
  prefix[d] = string.format('{"device_id":"rider-%06d","lat":%.6f,"lon":%.6f,"speed":4,"ts":',
                            d, 37.4 + (d % 1000) * 0.0002, 126.9 + (d % 997) * 0.0002)
end
local seq = 0
local parts = {}

function init(args)
  -- Threads must not repeat each other's timestamps.
  seq = (tonumber(wrk.thread:get("id") or "0") or 0) * 1000000000
end

function request()
  for i = 1, n do
    seq = seq + 1
    parts[i] = prefix[seq % devices] .. (1764000000000 + seq) .. "}"
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(parts, ",", 1, n) .. "]")
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout, latency:percentile(50),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
