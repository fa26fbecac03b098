-- wrk script for the webhook_gateway load harness.
--
--   wrk -s bench/post.lua <url> -- <body file> <hex signature> <run tag> [limit]
--
-- Every request is a POST of the body file's bytes with the headers GitHub
-- sends: Content-Type application/json, X-Hub-Signature-256 (precomputed
-- by the harness over the body with the shared secret) and a unique
-- X-GitHub-Delivery, so that async mode stores one event per request.
-- Responses are counted by status; done() prints one machine-readable
-- line starting with "BENCH" that the harness parses. With a limit (use
-- one thread, -t1), wrk reports and exits after that many responses: the
-- fills of the drain and backlog scenarios store a given number of events.

local threads = {}
local counter = 0

function setup(thread)
	thread:set("tid", #threads + 1)
	table.insert(threads, thread)
end

function init(args)
	local path, sig, tag = args[1], args[2], args[3] or "run"
	limit = tonumber(args[4] or "0") or 0
	if path == nil or sig == nil then
		error("usage: wrk -s post.lua <url> -- <body file> <hex signature> [run tag]")
	end
	local f = assert(io.open(path, "rb"))
	local body = f:read("*a")
	f:close()
	wrk.method = "POST"
	wrk.body = body
	wrk.headers["Content-Type"] = "application/json"
	wrk.headers["X-Hub-Signature-256"] = "sha256=" .. sig
	-- A UUID-shaped delivery id: the run tag and thread number keep ids of
	-- different runs and threads apart, the counter those of one thread.
	local h = 0
	for i = 1, #tag do
		h = (h * 31 + tag:byte(i)) % 0x100000000
	end
	prefix = string.format("%08x-%04x-4%03x", h, tid % 0x10000, os.time() % 0x1000)
	ok2xx, non2xx, mix = 0, 0, {}
end

function request()
	counter = counter + 1
	wrk.headers["X-GitHub-Delivery"] = string.format("%s-8%03x-%012x", prefix, counter % 0x1000, counter)
	return wrk.format()
end

function response(status, headers, body)
	if status >= 200 and status < 300 then
		ok2xx = ok2xx + 1
	else
		non2xx = non2xx + 1
		mix[status] = (mix[status] or 0) + 1
	end
	if limit > 0 and ok2xx + non2xx >= limit then
		-- wrk would wait out its -d duration after thread:stop(): report
		-- and leave now (requests in flight are abandoned; the harness
		-- times the fill and counts what was stored).
		local parts = {}
		for k, v in pairs(mix) do
			table.insert(parts, k .. "x" .. v)
		end
		table.sort(parts)
		io.write(string.format("BENCH requests=%d ok2xx=%d non2xx=%d mix=%s\n", ok2xx + non2xx, ok2xx, non2xx,
			#parts > 0 and table.concat(parts, ",") or "-"))
		io.flush()
		os.exit(0)
	end
end

function done(summary, latency, requests)
	local ok, bad, all = 0, 0, {}
	for _, t in ipairs(threads) do
		ok = ok + t:get("ok2xx")
		bad = bad + t:get("non2xx")
		local m = t:get("mix")
		if m then
			for k, v in pairs(m) do
				all[k] = (all[k] or 0) + v
			end
		end
	end
	local parts = {}
	for k, v in pairs(all) do
		table.insert(parts, k .. "x" .. v)
	end
	table.sort(parts)
	local e = summary.errors
	local secs = summary.duration / 1e6
	io.write(string.format(
		"BENCH requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d ok2xx=%d non2xx=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d status_err=%d mix=%s\n",
		summary.requests, secs, summary.requests / secs,
		latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
		ok, bad, e.connect, e.read, e.write, e.timeout, e.status,
		#parts > 0 and table.concat(parts, ",") or "-"))
end
