#!/usr/bin/env python3
"""Acme popular purchases (SPEC §3) over a slow data API: cold and warm
latency of `GET /api/recent_purchases/{user}` with the bundled simulator
answering every call after exactly LATENCY ms (in-process), and warm
requests/s against a native hyper handler returning the same bytes.

Cold = a fresh host (empty cache), first request for the user: ideally 3
upstream round trips (user, purchases, then all product calls at once), not
2 + 2 x products. Warm = the same request again inside the cache TTL.

Usage: bench/acme.py [--latency 200] [--duration 5] [--concurrency 1,16,64]
Needs: wrk (apt-get install wrk).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ROOT, TARGET, WASM, ensure_wrk, free_port, sh, wait_http, wrk  # noqa: E402

USER = "molinajonathan"


def manifest(latency):
    data = ROOT / "components/acme-data/data"
    return f"""
[components.acme]
wasm = "{WASM / 'acme.wasm'}"
routes = [{{ path = "/api/recent_purchases/*" }}]
grants = {{ interfaces = ["config", "log"], outbound = ["http://acme-data.wharf.internal"] }}
config = {{ data_api_url = "http://acme-data.wharf.internal" }}
outbound = {{ cache_ttl = "1h" }}
limits = {{ max_instances = 1000 }}

[components.acme-data]
wasm = "{WASM / 'acme_data.wasm'}"
routes = [{{ path = "/api/users/*" }}, {{ path = "/api/purchases/*" }}, {{ path = "/api/products/*" }}]
grants = {{ interfaces = ["config", "log"], files = {{ "/data" = "{data}" }} }}
config = {{ data_file = "/data/acme-data.json", latency_min_ms = "{latency}", latency_max_ms = "{latency}" }}
limits = {{ max_instances = 1000 }}
"""


def start_wharf(work):
    port = free_port()
    proc = subprocess.Popen([str(TARGET / "release" / "wharf"), "serve", "--manifest", str(work / "components.toml"),
                             "--listen", f"127.0.0.1:{port}", "--data-dir", str(work / "data")],
                            env=dict(os.environ, WHARF_LOG="warn"))
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc, f"http://127.0.0.1:{port}"


def timed_get(url):
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return (time.perf_counter() - started) * 1000, body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=int, default=200)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--cold-samples", type=int, default=5)
    args = ap.parse_args()
    ensure_wrk()
    sh(str(ROOT / "scripts" / "build.sh"), stdout=subprocess.DEVNULL)
    sh("cargo", "build", "--release", "-p", "wharf-bench", cwd=ROOT, stderr=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-acme-"))
    (work / "components.toml").write_text(manifest(args.latency))
    procs = []
    try:
        data = json.loads((ROOT / "components/acme-data/data/acme-data.json").read_text())
        products = len({p["product_id"] for p in sorted(
            (p for p in data["purchases"] if p["username"] == USER), key=lambda p: p["date"], reverse=True)[:5]})
        cold, warm_single = [], []
        for _ in range(args.cold_samples):
            shutil.rmtree(work / "data", ignore_errors=True)
            proc, base = start_wharf(work)
            ms, body = timed_get(f"{base}/api/recent_purchases/{USER}")
            cold.append(ms)
            warm_single.append(timed_get(f"{base}/api/recent_purchases/{USER}")[0])
            proc.terminate()
            proc.wait()
        (work / "answer.json").write_bytes(body)

        proc, base = start_wharf(work)
        procs.append(proc)
        timed_get(f"{base}/api/recent_purchases/{USER}")  # fill the cache
        native_port = free_port()
        procs.append(subprocess.Popen([str(TARGET / "release" / "native-hello"), f"127.0.0.1:{native_port}",
                                       str(work / "answer.json")], stdout=subprocess.DEVNULL))
        wait_http(f"http://127.0.0.1:{native_port}/")
        rows = []
        for name, url in [("wharf acme (warm cache)", f"{base}/api/recent_purchases/{USER}"),
                          ("native hyper, same bytes", f"http://127.0.0.1:{native_port}/")]:
            wrk(url, 16, 1)
            for c in [int(c) for c in args.concurrency.split(",")]:
                rows.append((name, c, *wrk(url, c, args.duration)))

        lat = args.latency
        print(f"\n{os.cpu_count()} cores; data API latency {lat} ms per call; user {USER} "
              f"({products} distinct recent products)\n")
        print("| request | samples | median ms | min ms | max ms | in upstream round trips |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, values in [("cold (fresh host, empty cache)", cold), ("warm (repeat, cached)", warm_single)]:
            med = statistics.median(values)
            print(f"| {name} | {len(values)} | {med:.1f} | {min(values):.1f} | {max(values):.1f} | {med / lat:.2f} |")
        print(f"\nsequential calls would take 2 + 2 x {products} = {2 + 2 * products} round trips "
              f"= {(2 + 2 * products) * lat} ms; concurrent ones 3 = {3 * lat} ms\n")
        native = {c: rps for name, c, rps, *_ in rows if name.startswith("native")}
        print("| server | conns | req/s | p50 ms | p99 ms | non-2xx | vs native |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, c, rps, p50, p99, errors in rows:
            print(f"| {name} | {c} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {errors} | {rps / native[c]:.2f}x |")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
