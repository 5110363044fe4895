-- One wrk script for every endpoint of the bench; configured by environment variables:
-- BENCH_MODE (bare | gateway | introspect | dot), BENCH_SECRETS (file, one token a line),
-- BENCH_AUTH (Authorization header of introspection callers), BENCH_URI (X-Original-URI).
local counter = 0
function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end

local secrets, idx, mode, auth, uri = {}, 0, nil, nil, nil
function init(args)
  mode = os.getenv("BENCH_MODE")
  auth = os.getenv("BENCH_AUTH")
  uri = os.getenv("BENCH_URI") or "/"
  local path = os.getenv("BENCH_SECRETS")
  if path then
    for line in io.lines(path) do secrets[#secrets + 1] = line end
  end
  idx = offset or 0
end

function request()
  if mode == "bare" then
    return wrk.format("GET", "/bench/bare")
  end
  idx = idx % #secrets + 1
  local secret = secrets[idx]
  if mode == "gateway" then
    return wrk.format("GET", "/gateway/auth",
      {["Authorization"] = "Bearer " .. secret, ["X-Original-URI"] = uri})
  end
  local path = mode == "dot" and "/o/introspect/" or "/oauth/introspect/"
  return wrk.format("POST", path,
    {["Authorization"] = auth, ["Content-Type"] = "application/x-www-form-urlencoded"},
    "token=" .. secret)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
