-- wrk script for the hello-world baseline: a static GET (no request() or
-- response() hook, so wrk takes its fastest path); only reports.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
