#!/usr/bin/env python3
"""HTTP serving benchmark: requests/s and p50/p99 latency of the same answer
from Wharf (`hello`, and `hello-plain` with no host imports), a native hyper
handler, and `wasmtime serve` (same `hello-plain.wasm`), at several
concurrency levels, measured in one run with wrk on this machine.

Usage: bench/serving.py [--duration 5] [--concurrency 1,16,64,256]
Needs: wrk (installed with apt-get when missing and run as root);
`wasmtime` on PATH or in ~/.cache/wharf-bench/wasmtime-48.0.8/bin (row skipped if
absent; install with: cargo install wasmtime-cli@48.0.8 --locked --no-default-features
--features serve,run,cranelift,pooling-allocator,parallel-compilation,component-model-async
--root ~/.cache/wharf-bench/wasmtime-48.0.8). bench/run covers this and more,
including the instance-reuse and WASIp3 rows (bench/lib/hello.py).
"""
import argparse, os, re, shutil, socket, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
WASM = TARGET / "wasm32-wasip2" / "release"


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def ensure_wrk():
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        sys.exit("wrk is missing: apt-get install wrk")
    sh("apt-get", "update", "-qq")
    sh("apt-get", "install", "-y", "-qq", "wrk")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=120):
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"{url} did not answer")


def wrk(url, conns, duration):
    threads = min(2, conns)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def lat(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat(50), lat(99), int(errors.group(1)) if errors else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--concurrency", default="1,16,64,256")
    args = ap.parse_args()
    ensure_wrk()
    sh(str(ROOT / "scripts" / "build.sh"), stdout=subprocess.DEVNULL)
    sh("cargo", "build", "--release", "-p", "wharf-bench", cwd=ROOT, stderr=subprocess.DEVNULL)

    work = Path(tempfile.mkdtemp(prefix="wharf-bench-"))
    (work / "components.toml").write_text(f"""
[components.hello]
wasm = "{WASM / 'hello.wasm'}"
routes = [{{ path = "/hello/*" }}]
grants = {{ interfaces = ["config", "log"] }}
limits = {{ max_instances = 1000 }}

[components.hello-plain]
wasm = "{WASM / 'hello_plain.wasm'}"
routes = [{{ path = "/plain/*" }}]
limits = {{ max_instances = 1000 }}
""")
    procs = []
    try:
        wharf_port, native_port, wasmtime_port = free_port(), free_port(), free_port()
        env = dict(os.environ, WHARF_LOG="warn")
        procs.append(subprocess.Popen([str(TARGET / "release" / "wharf"), "serve", "--manifest", str(work / "components.toml"),
                                       "--listen", f"127.0.0.1:{wharf_port}", "--data-dir", str(work / "data")], env=env))
        procs.append(subprocess.Popen([str(TARGET / "release" / "native-hello"), f"127.0.0.1:{native_port}"],
                                      stdout=subprocess.DEVNULL))
        targets = [
            ("wharf hello (config+log imports)", f"http://127.0.0.1:{wharf_port}/hello/"),
            ("wharf hello-plain", f"http://127.0.0.1:{wharf_port}/plain/"),
            ("native hyper", f"http://127.0.0.1:{native_port}/"),
        ]
        wasmtime = shutil.which("wasmtime") or str(Path.home() / ".cache/wharf-bench/wasmtime-48.0.8/bin/wasmtime")
        if Path(wasmtime).exists():
            procs.append(subprocess.Popen([wasmtime, "serve", "-Scli", "--addr", f"127.0.0.1:{wasmtime_port}",
                                           str(WASM / "hello_plain.wasm")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            targets.append(("wasmtime serve hello-plain", f"http://127.0.0.1:{wasmtime_port}/"))
        else:
            print(f"note: {wasmtime} not found; skipping the wasmtime serve row", file=sys.stderr)
        for _, url in targets:
            wait_http(url)

        levels = [int(c) for c in args.concurrency.split(",")]
        rows = []
        for name, url in targets:
            wrk(url, 16, 1)  # warm up
            for c in levels:
                rps, p50, p99, errors = wrk(url, c, args.duration)
                rows.append((name, c, rps, p50, p99, errors))
        native = {c: rps for name, c, rps, *_ in rows if name == "native hyper"}
        print(f"\n{os.cpu_count()} cores, wrk -t2 --latency, {args.duration}s per cell\n")
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
