-- wrk script for bench/metadata: POSTs pre-built, pre-gzipped bodies
-- (Content-Encoding: gzip) in turn, so that building a request costs wrk
-- nothing but handing out a string. BODIES names a file written by
-- bench/metadata/run: a first line "COUNT LEN1 LEN2 ...\n", then the COUNT
-- gzip bodies back to back. Prints the same WRK_JSON summary line as
-- bench/lib/post.lua.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Content-Encoding"] = "gzip"

local bodies = {}
do
  local f = assert(io.open(assert(os.getenv("BODIES"), "BODIES is not set"), "rb"))
  local data = f:read("*a")
  f:close()
  local nl = data:find("\n", 1, true)
  local pos = nl + 1
  local first = true
  for n in data:sub(1, nl - 1):gmatch("%d+") do
    if first then
      first = false -- the count; the lengths follow
    else
      local len = tonumber(n)
      bodies[#bodies + 1] = data:sub(pos, pos + len - 1)
      pos = pos + len
    end
  end
end

local prebuilt -- built on the first request, once wrk has set the Host header
local i = 0

function init(args)
  -- Threads start at different bodies.
  i = (tonumber(wrk.thread:get("id") or "0") or 0) * 7919
end

function request()
  if not prebuilt then
    prebuilt = {}
    for k, b in ipairs(bodies) do
      prebuilt[k] = wrk.format(nil, nil, nil, b)
    end
  end
  i = i + 1
  return prebuilt[i % #prebuilt + 1]
end

-- A 503 makes the next request wait BACKOFF_MS (2 ms), as a phone honours
-- Retry-After; done() prints the WRK_JSON line.
dofile((debug.getinfo(1, "S").source:match("^@(.*)/") or ".") .. "/../lib/wrk_common.lua")
backoff_on_503(2)
