-- wrk script: send pre-generated requests, each once. Usage:
--   wrk -s replay.lua http://127.0.0.1:PORT/ -- PREFIX
-- Thread N sends the records of PREFIX.N (complete HTTP requests, each ended
-- by a NUL byte, written by `zapfn-bench payloads --parts <threads>`); the
-- URL only gives the address. The slice is opened in init() and streamed in
-- 1 MiB chunks rather than read whole: wrk runs each thread's init() only
-- after starting the threads before it, so a slow init() would let thread 0
-- work before the clock starts and inflate the figures. `repeats` counts
-- wrap-arounds to the start of the slice (there should be none: every
-- request is distinct). There is no response() hook: with one, wrk parses
-- every response's headers into Lua tables, the client's most expensive step
-- and one the hello-world baseline does not pay; report.lua counts 2xx answers
-- as `ok` and the rest as `other` from wrk's own tally (the webhook answers
-- only 200 and the send API only 202 when they succeed).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local find, sub = string.find, string.sub
local CHUNK = 1024 * 1024
local file, buffer, pos
sent, repeats = 0, 0

function init(args)
   file = assert(io.open(args[1] .. "." .. id, "rb"))
   buffer, pos = "", 1
end

-- Appends the next chunk to what is left of the buffer, wrapping at the end.
local function refill()
   local more = file:read(CHUNK)
   if not more then
      repeats = repeats + 1
      file:seek("set", 0)
      more = assert(file:read(CHUNK), "empty payload file")
   end
   buffer, pos = sub(buffer, pos) .. more, 1
end

function request()
   local stop = find(buffer, "\0", pos, true)
   while not stop do
      refill()
      stop = find(buffer, "\0", pos, true)
   end
   local record = sub(buffer, pos, stop - 1)
   pos = stop + 1
   sent = sent + 1
   return record
end
