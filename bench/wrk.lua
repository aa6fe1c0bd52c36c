-- Request shape from the environment (method, path, body file), and a JSON summary at the end.
-- BENCH_PATHS (comma-separated) spreads the requests over several paths instead: each of wrk's
-- threads takes its own share of them and goes round it, so that no two threads ask one path.
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body_file = os.getenv("BENCH_BODY")
local body = nil
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  body = f:read("*a")
  f:close()
end

local all = {}
for p in string.gmatch(os.getenv("BENCH_PATHS") or "", "[^,]+") do table.insert(all, p) end

local threads = 0
setup = function(thread)
  thread:set("index", threads)
  threads = threads + 1
end

local paths = {}
local turn = 0
init = function(args)
  local count = tonumber(os.getenv("BENCH_THREADS") or "1")
  for i, p in ipairs(all) do
    if (i - 1) % count == index then table.insert(paths, p) end
  end
end

request = function()
  -- Headers given to wrk with -H (wrk.format takes only the table it is given).
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  if body then headers["Content-Type"] = "application/json" end
  local at = path
  if #paths > 0 then
    turn = turn % #paths + 1
    at = paths[turn]
  end
  return wrk.format(method, at, headers, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"seconds":%f,"p50_us":%d,"p99_us":%d,"errors":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), errors))
end
