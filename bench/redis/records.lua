-- wrk script for bench/redis: every request POSTs a JSON array of RECORDS GPS
-- fixes for DEVICES devices, with a timestamp that grows with every record so
-- that `if_newer` always finds the record newer (the costly path). Prints the
-- same WRK_JSON summary line as bench/lib/post.lua.
--
-- wrk shares redis-server's core, so building a body must cost next to
-- nothing: building it record by record in Lua cost ~0.9 us per record there,
-- more than GEOADD itself, and capped the benchmark at the harness. So the
-- bodies are built once, at start, in pieces around each timestamp's leading
-- digits; a request only puts its number into those slots and joins the
-- pieces (one table.concat, in C). Record i (0-based) of request r of a thread has
--   device = (r * RECORDS + i) % DEVICES
--   ts     = (17640000000 * 100 / 10^W + r) * 10^W + i,   10^W >= RECORDS,
-- i.e. every record of a run has a distinct, growing timestamp (about
-- 1764000000000, as before) and the devices are visited in the same order
-- as before: a body template per window of RECORDS devices, until they repeat.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = tonumber(os.getenv("RECORDS") or "100")
local devices = tonumber(os.getenv("DEVICES") or "10000")

local width = 1
while 10 ^ width < n do
  width = width + 1
end
local base = 1764000000000 / 10 ^ width -- the leading digits, before adding r

local function gcd(a, b)
  while b ~= 0 do
    a, b = b, a % b
  end
  return a
end

-- Bodies repeat their devices every devices / gcd(n, devices) requests. A
-- request is kept as its fixed pieces: slot 1 for the head (it has the
-- length), then the body's text with an empty slot for each timestamp's
-- leading digits (the request's number).
local requests = {}
local fixed = {} -- body bytes without the request's number
local count = devices / gcd(n, devices)
for k = 0, count - 1 do
  local t = {""}
  for i = 0, n - 1 do
    local d = (k * n + i) % devices
    t[#t + 1] = string.format(
      '%s{"device_id":"rider-%06d","lat":%.6f,"lon":%.6f,"speed":4,"ts":',
      i == 0 and "[" or string.format("%0" .. width .. "d},", i - 1), d,
      37.4 + (d % 1000) * 0.0002, 126.9 + (d % 997) * 0.0002)
    t[#t + 1] = "" -- the request's number goes here
  end
  t[#t + 1] = string.format("%0" .. width .. "d}]", n - 1)
  requests[k] = t
  fixed[k] = #table.concat(t)
end

local r = 0
local head -- the request line and headers up to "Content-Length: "

function init(args)
  -- Threads must not repeat each other's timestamps.
  r = (tonumber(wrk.thread:get("id") or "0") or 0) * 10000000
end

function request()
  if not head then
    -- wrk.format writes the request line and headers as wrk would.
    local h = wrk.format(nil, nil, nil, nil)
    head = h:sub(1, #h - 2) .. "Content-Length: "
  end
  local k = r % count
  local t = requests[k]
  local p = string.format("%d", base + r)
  for i = 3, 2 * n + 1, 2 do
    t[i] = p
  end
  t[1] = head .. (fixed[k] + n * #p) .. "\r\n\r\n"
  r = r + 1
  return table.concat(t)
end

-- A 503 makes the next request wait BACKOFF_MS (2 ms), as a phone honours
-- Retry-After; done() prints the WRK_JSON line.
dofile((debug.getinfo(1, "S").source:match("^@(.*)/") or ".") .. "/../lib/wrk_common.lua")
backoff_on_503(2)
