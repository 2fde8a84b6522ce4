-- Shared by the zapfn bench scripts (loaded with dofile). setup() numbers the
-- threads (global `id` = 0, 1, ... in each thread); done() prints wrk's
-- summary and the sum of each thread's counters as name=value lines, which
-- bench/run.sh reads.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads - 1)
end

local function total(name)
   local sum = 0
   for _, thread in ipairs(threads) do
      sum = sum + (thread:get(name) or 0)
   end
   return sum
end

function done(summary, latency, requests)
   local errors = summary.errors
   local lines = {
      { "requests", summary.requests },
      { "duration_us", summary.duration },
      { "sent", total("sent") },
      { "ok", summary.requests - errors.status },
      { "other", errors.status },
      { "repeats", total("repeats") },
      { "errors_connect", errors.connect },
      { "errors_read", errors.read },
      { "errors_write", errors.write },
      { "errors_status", errors.status },
      { "errors_timeout", errors.timeout },
      { "p50_us", latency:percentile(50) },
      { "p90_us", latency:percentile(90) },
      { "p99_us", latency:percentile(99) },
      { "max_us", latency.max },
   }
   for _, line in ipairs(lines) do
      io.write(string.format("%s=%.0f\n", line[1], line[2]))
   end
end
