"""The load of scripts/bench: wrk posting distinct valid TimeStampReqs, at one node or
spread over several (one wrk process per node, the connections shared out as evenly as
they go; their latency histograms merged, so percentiles are over every request)."""

from __future__ import annotations

import re
import resource
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

# Each request: a random SHA-256 imprint and a nonce from a per-thread counter, so every
# query is distinct (`-- SALT` tells apart the wrk processes of one level: it seeds the
# digests and is the nonce's first byte with the thread's id). A reply is counted as
# granted when its PKIStatus is 0. done() prints the counts, wrk's own percentiles and the
# latency histogram (`latency(i)`: the i-th distinct value in µs and its count).
LUA = r"""
local counter = 0
local salt = 0
granted, rejected = 0, 0  -- globals: done() reads them with thread:get
local prefix = "\48\65\2\1\1\48\47\48\11\6\9\96\134\72\1\101\3\4\2\1\4\32"
function init(args)
  salt = tonumber(args[1] or "0") or 0
  math.randomseed(os.time() + (id or 0) + 7919 * salt)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/timestamp-query"
end
function request()
  counter = counter + 1
  local digest = {}
  for i = 1, 32 do digest[i] = string.char(math.random(0, 255)) end
  local n = counter
  local nonce = {}
  for i = 7, 1, -1 do nonce[i] = string.char(n % 256); n = math.floor(n / 256) end
  local body = prefix .. table.concat(digest) .. "\2\8"
      .. string.char((salt * 16 + (id or 1)) % 127 + 1) .. table.concat(nonce) .. "\1\1\255"
  return wrk.format(nil, nil, nil, body)
end
function response(status, headers, body)
  -- 30 82 LL LL 30 03 02 01 00: a granted TimeStampResp
  if status == 200 and string.byte(body, 9) == 0 and string.byte(body, 5) == 48 then
    granted = granted + 1 else rejected = rejected + 1 end
end
threads = {}
function setup(thread) thread:set("id", #threads + 1); table.insert(threads, thread) end
function done(summary, latency, requests)
  local g, r = 0, 0
  for _, t in ipairs(threads) do g = g + t:get("granted"); r = r + t:get("rejected") end
  io.write(string.format("BENCH granted=%d rejected=%d p50=%d p90=%d p99=%d\n", g, r,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
  local parts = {}
  for i = 1, #latency do
    local v, c = latency(i)
    parts[#parts + 1] = string.format("%d:%d", v, c)
  end
  io.write("HIST " .. table.concat(parts, ",") .. "\n")
end
"""


def split(connections: int, nodes: int) -> list[int]:
    """Connections per node: as even as they go, the first nodes taking the remainder;
    a node gets none when there are fewer connections than nodes."""
    base, extra = divmod(connections, nodes)
    return [base + (i < extra) for i in range(nodes)]


def percentile(histogram: dict[int, int], p: float) -> int:
    """The value at percentile p of a {µs: count} histogram (wrk's rank rule)."""
    total = sum(histogram.values())
    rank, seen = max(1, round(p / 100 * total)), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return 0


def _parse(out: str) -> dict:
    figures = dict(re.findall(r"(\w+)=(\d+)", out.split("BENCH", 1)[1].split("\n", 1)[0]))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    hist: dict[int, int] = {}
    line = out.split("HIST ", 1)[1].split("\n", 1)[0] if "HIST " in out else ""
    for pair in filter(None, line.split(",")):
        value, count = pair.split(":")
        hist[int(value)] = hist.get(int(value), 0) + int(count)
    return {
        "granted": int(figures["granted"]),
        "rejected": int(figures["rejected"]),
        "p50_ms": int(figures["p50"]) / 1000,
        "p90_ms": int(figures["p90"]) / 1000,
        "p99_ms": int(figures["p99"]) / 1000,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
        "non2xx": int(m.group(1))
        if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out))
        else 0,
        "hist": hist,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(urls: str | list[str], script: Path, connections: int, seconds: int) -> dict:
    """One level: `connections` spread over `urls`, for `seconds`. Returns the summed
    counts, percentiles (wrk's own with one process, else from the merged histograms)
    and the CPU the wrk processes used (`wrk_cpu_s`)."""
    urls = [urls] if isinstance(urls, str) else urls
    shares = [(url, n) for url, n in zip(urls, split(connections, len(urls)), strict=True) if n]
    cpu0 = _children_cpu()
    processes = []
    for salt, (url, n) in enumerate(shares):
        # one wrk: up to 2 threads (as always); several: one thread each, the cores are few
        threads = max(1, min(2, n)) if len(shares) == 1 else 1
        command = ["wrk", f"-t{threads}", f"-c{n}", f"-d{seconds}s", "-s", str(script), url]
        processes.append(
            subprocess.Popen(
                [*command, "--", str(salt)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        )
    results = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode != 0 or "BENCH" not in out:
            raise RuntimeError(f"wrk failed ({process.returncode}): {err.strip() or out[-500:]}")
        results.append(_parse(out))
    merged = {key: sum(r[key] for r in results) for key in
              ("granted", "rejected", "socket_errors", "non2xx")}  # fmt: skip
    if len(results) == 1:
        merged.update({k: results[0][k] for k in ("p50_ms", "p90_ms", "p99_ms")})
    else:
        hist: dict[int, int] = {}
        for r in results:
            for value, count in r["hist"].items():
                hist[value] = hist.get(value, 0) + count
        for p in (50, 90, 99):
            merged[f"p{p}_ms"] = percentile(hist, p) / 1000
    merged["wrk_cpu_s"] = _children_cpu() - cpu0
    return merged


def verify_samples(url: str, ca: Path, count: int) -> int:
    ok = 0
    with tempfile.TemporaryDirectory() as tmp:
        data, query, reply = Path(tmp) / "d", Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
        for i in range(count):
            data.write_bytes(b"bench sample %d %f" % (i, time.time()))
            subprocess.run(
                ["openssl", "ts", "-query", "-data", data, "-sha256", "-cert", "-out", query],
                check=True,
                capture_output=True,
            )
            request = urllib.request.Request(
                url,
                data=query.read_bytes(),
                headers={"Content-Type": "application/timestamp-query"},
            )
            reply.write_bytes(urllib.request.urlopen(request, timeout=10).read())
            result = subprocess.run(
                ["openssl", "ts", "-verify", "-in", reply, "-data", data, "-CAfile", ca],
                capture_output=True,
                text=True,
            )
            ok += "Verification: OK" in result.stdout
    return ok
