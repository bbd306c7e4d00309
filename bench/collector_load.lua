-- wrk's script for bench/collector_load.py: posts the fleet's reports, a random
-- database's each time, and reports what it saw as one JSON line.
--
-- The data file (written by collector_load.py) holds, one per line: "<templates>
-- <databases>", then each template (a report's compact JSON with @DB_UUID@ and
-- @EXPORTED_DB_UUID@ in place of its two ids), then "<db_uuid> <exported_db_uuid>"
-- per database.  Database i's report is template (i - 1) % templates + 1 with its
-- ids: the same bytes collector_load.py's Fleet.body(i - 1) makes.

local parts = {}        -- per template: the text before, between and after the ids
local db_uuids, exported = {}, {}
-- Read by done() through thread:get(), which sees globals only.
statuses = {}

local function split(text, marker)
  local from, to = string.find(text, marker, 1, true)
  assert(from, "template without " .. marker)
  return string.sub(text, 1, from - 1), string.sub(text, to + 1)
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("id", #threads)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local header = file:read("*l")
  local templates, databases = string.match(header, "^(%d+) (%d+)$")
  for t = 1, tonumber(templates) do
    local line = file:read("*l")
    local head, rest = split(line, "@DB_UUID@")
    local middle, tail = split(rest, "@EXPORTED_DB_UUID@")
    parts[t] = { head, middle, tail }
  end
  for d = 1, tonumber(databases) do
    local line = file:read("*l")
    db_uuids[d], exported[d] = string.match(line, "^(%S+) (%S+)$")
  end
  file:close()
  math.randomseed(os.time() * 100 + wrk.thread:get("id"))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["User-Agent"] = "telemetry-extension/bench"
end

function request()
  local d = math.random(#db_uuids)
  local p = parts[(d - 1) % #parts + 1]
  return wrk.format(nil, nil, nil, p[1] .. db_uuids[d] .. p[2] .. exported[d] .. p[3])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total, counts = {}, {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    counts[#counts + 1] = string.format('"%d": %d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "statuses": {%s}, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, table.concat(counts, ", "),
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
