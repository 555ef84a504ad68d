"""The resources section: start to /readyz with every bundled component (empty
compile cache, then the same data dir again), resident memory idle and with
1,000 requests in flight, and reloads under load (the logic of
bench/hotswap.py)."""

import json, os, shutil, statistics, threading, time, urllib.request

from harness import PROCS, WASM, BenchError, Host, bundled_manifest, component, established, log, wrk

INFLIGHT = 1000


def startup(args):
    """Cold: a fresh data dir (every component compiled). Warm: the same data dir
    again (compiled modules from DATA_DIR/cache/components). RSS after 2 s idle."""
    data_dir = PROCS.tempdir("startup-data")
    out = {}
    for kind in ("cold", "warm"):
        host = Host(f"start-{kind}", bundled_manifest(), data_dir=data_dir)
        log(f"resources: {kind} start of every bundled component")
        out[f"{kind}_s"] = host.start()
        time.sleep(2)
        out[f"{kind}_rss_kb"] = host.status("VmRSS")
        host.stop()
    out["components"] = len(bundled_manifest()["components"])
    return out, data_dir


def inflight(args, data_dir):
    """wrk holds INFLIGHT connections, each with one request to misbehave's
    /misbehave/slow (an instance that sleeps SLOW ms) always outstanding; /proc
    is sampled every 100 ms for the peak VmRSS and the connections established."""
    data = bundled_manifest()
    data["components"] |= component("misbehave", "misbehave.wasm", ["/misbehave/*"], grants={"interfaces": ["log"]},
                                    limits={"max_instances": INFLIGHT + 100, "deadline": "60s"})
    host = Host("inflight", data, data_dir=data_dir, extra=["--max-connections-per-ip", "20000"])
    host.start()
    time.sleep(2)
    idle = host.status("VmRSS")
    slow_ms = args.inflight_ms
    peak, conns, stop = [0], [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], host.status("VmRSS"))
            conns[0] = max(conns[0], established(host.port))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        w = wrk(f"{host.base}/misbehave/slow?ms={slow_ms}", INFLIGHT, args.inflight_s, threads=2,
                timeout=slow_ms // 1000 + 30)
    finally:
        stop.set()
        sampler.join()
    hwm = host.status("VmHWM")
    host.stop()
    return {"idle_kb": idle, "peak_kb": peak[0], "hwm_kb": hwm, "requests": w["requests"], "conns": conns[0],
            "non2xx": w["non2xx"], "socket_errors": w["socket_errors"],
            "slow_ms": slow_ms}


def hotswap(args):
    """wrk keeps 256 connections busy on `app` while the operator API reloads it
    args.reloads times, alternating hello.wasm and hello_plain.wasm."""
    work = PROCS.tempdir("hotswap")
    app = work / "app.wasm"
    versions = [WASM / "hello.wasm", WASM / "hello_plain.wasm"]

    def install(src):
        shutil.copy(src, work / "app.tmp")
        os.replace(work / "app.tmp", app)

    def reload():
        req = urllib.request.Request(f"{host.admin}/components/app/reload", method="POST")
        return json.loads(urllib.request.urlopen(req, timeout=60).read())

    install(versions[0])
    host = Host("hotswap", {"components": {"app": {"wasm": str(app), "routes": [{"path": "/app/*"}],
                                                    "grants": {"interfaces": ["config", "log"]},
                                                    "limits": {"max_instances": 1000}}}})
    host.start()
    for v in versions + versions[:1]:  # compile both once: the timed reloads measure the swap
        install(v)
        reload()
    duration = max(10, args.reloads // 20)
    out = {}
    load = threading.Thread(target=lambda: out.setdefault("wrk", wrk(f"{host.base}/app/", 256, duration)))
    load.start()
    time.sleep(1)
    took, refused, seen = [], 0, set()
    gap = (duration - 3) / args.reloads
    for i in range(args.reloads):
        install(versions[(i + 1) % 2])
        started = time.perf_counter()
        try:
            seen.add(reload()["version"])
        except Exception:
            refused += 1
        took.append((time.perf_counter() - started) * 1000)
        time.sleep(max(0.0, gap - took[-1] / 1000))
    load.join()
    host.stop()
    if "wrk" not in out:
        raise BenchError("wrk did not finish")
    w = out["wrk"]
    took.sort()
    return {"requests": w["requests"], "rps": w["rps"], "failed": w["non2xx"] + w["socket_errors"],
            "reloads": args.reloads, "refused": refused, "versions": len(seen), "p50": statistics.median(took),
            "p99": took[max(0, int(len(took) * 0.99) - 1)], "seconds": duration}


def run(args):
    res = {}
    try:
        res["startup"], data_dir = startup(args)
    except BenchError as e:
        res["startup"], data_dir = {"error": str(e)}, None
        log(f"resources: startup: {e}")
    res["startup_dir"] = data_dir
    for key, fn, a in [("inflight", inflight, (args, data_dir)), ("hotswap", hotswap, (args,))]:
        log(f"resources: {key}")
        try:
            res[key] = fn(*a)
        except (BenchError, OSError) as e:
            res[key] = {"error": str(e)}
            log(f"resources: {key}: {e}")
    return res
