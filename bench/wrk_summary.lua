-- wrk script of bench/small_requests.sh: at the end of a run, writes its figures as one JSON
-- object to the file named by WRK_JSON (wrk's own --latency text is kept in the log). Latencies
-- are wrk's, in microseconds: from writing a request to reading its whole response, per
-- connection, coordinated omission not corrected. Nothing here runs per request.

done = function(summary, latency, requests)
    local e = summary.errors
    local out = assert(io.open(os.getenv("WRK_JSON"), "w"))
    out:write(string.format(
        '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.max))
    out:close()
end
