"""The hello section: every server answering the same bytes, started once up
front on its own port, measured in interleaved rounds (each round gives every
server one short wrk slice per concurrency, in a rotating order), plus the
per-request figures taken during Wharf hello-plain's 64-connection slices."""

from harness import (PROCS, WASM, WASMTIME, BENCH_BIN, BenchError, Host, aggregate, component, cpu_seconds,
                     free_port, histogram, histogram_delta, histogram_quantile, log, wait_http, wrk)

ACME_USER = "molinajonathan"
ACME_LATENCY_MS = 200

# `wasmtime serve` forms (wasmtime-cli 48.0.8). Its default already uses the
# pooling allocator when the address space allows; -O pooling-allocator=y
# makes the tuned forms fail loudly rather than fall back.
TUNED = ["-O", "pooling-allocator=y", "-O", "memory-init-cow=n",
         "-O", "pooling-memory-keep-resident=4194304", "-O", "pooling-table-keep-resident=1048576"]
PAGEMAP = ["-O", "pooling-allocator=y", "-O", "memory-init-cow=n", "-O", "pooling-pagemap-scan=y",
           "-O", "pooling-memory-keep-resident=16777216", "-O", "pooling-table-keep-resident=1048576"]
WASMTIME_FORMS = [
    ("wasmtime serve, default", "wasmtime serve -Scli", []),
    ("wasmtime serve, tuned", "+ " + " ".join(TUNED[1::2]), TUNED),
    ("wasmtime serve, tuned + pagemap-scan", "+ " + " ".join(PAGEMAP[1::2]), PAGEMAP),
    ("wasmtime serve, p2 instance reuse", "--max-instance-reuse-count 128", ["--max-instance-reuse-count", "128"]),
]
# The same p3 component under `wasmtime serve`, with its default p3 reuse
# (up to 128 requests per instance, 16 at once, 1 s idle).
WASMTIME_P3_FORMS = [
    ("wasmtime serve, p3, default reuse", "p3_hello.wasm, wasmtime serve -Scli", []),
]


def manifest():
    data = {"components": {}}
    data["components"] |= component("hello", "hello.wasm", ["/hello/*"], grants={"interfaces": ["config", "log"]},
                                    config={"greeting": "Hello"}, limits={"max_instances": 1000})
    data["components"] |= component("hello-plain", "hello_plain.wasm", ["/plain/*"], limits={"max_instances": 1000})
    # Opt-in reuse (docs/reuse.md) at wasmtime serve's defaults, and WASIp3.
    data["components"] |= component("hello-plain-reuse", "hello_plain.wasm", ["/plain-reuse/*"],
                                    limits={"max_instances": 1000}, reuse={})
    data["components"] |= component("p3-hello", "p3_hello.wasm", ["/p3/*"], limits={"max_instances": 1000})
    data["components"] |= component("p3-hello-reuse", "p3_hello.wasm", ["/p3-reuse/*"],
                                    limits={"max_instances": 1000}, reuse={})
    data["components"] |= acme_components(ACME_LATENCY_MS)
    return data


def acme_components(latency_ms):
    from harness import ROOT
    data = {}
    data |= component("acme", "acme.wasm", ["/api/recent_purchases/*"],
                      grants={"interfaces": ["config", "log"], "outbound": ["http://acme-data.wharf.internal"]},
                      config={"data_api_url": "http://acme-data.wharf.internal"},
                      outbound={"cache_ttl": "1h"}, limits={"max_instances": 1000, "deadline": "20s"})
    data |= component("acme-data", "acme_data.wasm", ["/api/users/*", "/api/purchases/*", "/api/products/*"],
                      grants={"interfaces": ["config", "log"],
                              "files": {"/data": str(ROOT / "components/acme-data/data")}},
                      config={"data_file": "/data/acme-data.json", "latency_min_ms": str(latency_ms),
                              "latency_max_ms": str(latency_ms)},
                      limits={"max_instances": 1000})
    return data


class Target:
    """One server of the table and its wrk slices, by connection count."""

    def __init__(self, name, url, note="", proc=None):
        self.name, self.url, self.note, self.proc = name, url, note, proc
        self.levels, self.slices, self.error = [], {}, None


def start_servers(args):
    """Starts every server of the section; returns (wharf host, targets, skipped rows)."""
    host = Host("hello", manifest())
    log("hello: starting wharf (hello, hello-plain, with reuse, p3 hello, with reuse, acme, acme-data)")
    host.start()
    native_port = free_port()
    native = PROCS.start([BENCH_BIN / "native-hello", f"127.0.0.1:{native_port}"])
    targets = [
        Target("wharf hello-plain", host.base + "/plain/", "fresh instance per request, no host imports"),
        Target("wharf hello", host.base + "/hello/", "fresh instance, config + log imports"),
        Target("native hyper", f"http://127.0.0.1:{native_port}/", "bench/src/bin/native-hello.rs"),
        Target("wharf hello-plain, reuse", host.base + "/plain-reuse/", "p2, `reuse = {}` (128 requests per instance)"),
        Target("wharf p3 hello", host.base + "/p3/", "WASIp3 (tests/components/p3-hello), fresh instance"),
        Target("wharf p3 hello, reuse", host.base + "/p3-reuse/", "WASIp3, `reuse = {}`, one request at a time"),
    ]
    skipped = []
    forms = [(f, "hello_plain.wasm") for f in WASMTIME_FORMS] + [(f, "p3_hello.wasm") for f in WASMTIME_P3_FORMS]
    for (name, note, flags), wasm in forms:
        if not args.wasmtime:
            skipped.append((name, note, getattr(args, "wasmtime_note", "not installed")))
            continue
        port = free_port()
        proc = PROCS.start([WASMTIME, "serve", "-Scli", *flags, "--addr", f"127.0.0.1:{port}",
                            WASM / wasm], log_path=host.work / f"wasmtime-{port}.log")
        targets.append(Target(name, f"http://127.0.0.1:{port}/", note, proc))
    for t in targets:
        try:
            wait_http(t.url, timeout=300, proc=t.proc)
        except BenchError as e:
            t.error = str(e)
            log(f"hello: {t.name}: {e}")
    # The warm Acme answer, compared with hello: one request fills the cache.
    acme_url = f"{host.base}/api/recent_purchases/{ACME_USER}"
    wait_http(acme_url, timeout=60)
    targets.append(Target("wharf acme, warm cache", acme_url,
                          f"SPEC §3 over the simulator ({ACME_LATENCY_MS} ms per upstream call), cached"))
    return host, native, targets, skipped


def run(args):
    levels = [1, 64, 256]
    host, native, targets, skipped = start_servers(args)
    for t in targets:
        t.levels = [64] if t.name.startswith("wharf acme") else levels
        t.slices = {c: [] for c in t.levels}
    live = [t for t in targets if not t.error]
    for t in live:  # warm up: JIT-free, but pools, caches and connections fill
        wrk(t.url, 64, 1)
    per_request = {"cpu_s": 0.0, "requests": 0, "inst": None}
    plain = live[0]
    name = "wharf_instantiate_duration_seconds"
    log(f"hello: {args.rounds} rounds x {args.slice} s slices, {len(live)} servers, connections {levels}")
    for r in range(args.rounds):
        for c in levels:
            order = [t for t in live if c in t.levels]
            k = r % len(order)
            for t in order[k:] + order[:k]:
                measured = t is plain and c == 64
                if measured:
                    before = histogram(host.metrics(), name, {"component": "hello-plain"})
                    cpu0 = cpu_seconds(host.pid)
                try:
                    s = wrk(t.url, c, args.slice)
                except BenchError as e:
                    log(f"hello: {t.name} @{c}: {e}")
                    continue
                t.slices[c].append(s)
                if measured:
                    per_request["cpu_s"] += cpu_seconds(host.pid) - cpu0
                    per_request["requests"] += s["requests"]
                    delta = histogram_delta(before, histogram(host.metrics(), name, {"component": "hello-plain"}))
                    acc = per_request["inst"]
                    per_request["inst"] = delta if acc is None else (
                        acc[0] + delta[0], acc[1] + delta[1],
                        [(le, a + b) for (le, a), (_, b) in zip(acc[2], delta[2])])
        log(f"hello: round {r + 1}/{args.rounds} done")
    cells = {}
    for t in targets:
        for c in t.levels:
            cells[(t.name, c)] = aggregate(t.slices[c]) if t.slices[c] else None
    host.stop()
    PROCS.stop(native)
    for t in targets:
        if t.proc:
            PROCS.stop(t.proc)
    inst = per_request["inst"]
    result = {"targets": targets, "skipped": skipped, "cells": cells, "levels": levels,
              "cpu_us_per_request": per_request["cpu_s"] / per_request["requests"] * 1e6
              if per_request["requests"] else None,
              "cpu_requests": per_request["requests"]}
    if inst and inst[1]:
        result["inst_mean_us"] = inst[0] / inst[1] * 1e6
        result["inst_p99_le_us"] = histogram_quantile(inst[2], inst[1], 0.99) * 1e6
        result["inst_count"] = int(inst[1])
        result["inst_buckets"] = inst[2]
    return result
