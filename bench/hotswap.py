#!/usr/bin/env python3
"""Hot swap under load, the long form of tests/all/operator.rs: wrk keeps
CONNS keep-alive connections busy on one component while RELOADS reloads
alternate two versions of it (hello.wasm / hello_plain.wasm installed by
rename, then `POST /components/app/reload` on the operator API). Prints a
table: requests, failures (non-2xx and socket errors, as wrk counts them)
and reload latency.

Usage: bench/hotswap.py [--reloads 500] [--conns 256]
Needs: wrk (apt-get install wrk).
"""
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile, threading, time, urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ROOT, TARGET, WASM, ensure_wrk, free_port, sh, wait_http  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reloads", type=int, default=500)
    ap.add_argument("--conns", type=int, default=256)
    args = ap.parse_args()
    ensure_wrk()
    sh(str(ROOT / "scripts" / "build.sh"), stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-hotswap-"))
    app = work / "app.wasm"
    versions = [WASM / "hello.wasm", WASM / "hello_plain.wasm"]

    def install(src):
        shutil.copy(src, work / "app.tmp")
        os.replace(work / "app.tmp", app)

    install(versions[0])
    (work / "components.toml").write_text(f"""
[components.app]
wasm = "{app}"
routes = [{{ path = "/app/*" }}]
grants = {{ interfaces = ["config", "log"] }}
limits = {{ max_instances = 1000 }}
""")
    port = free_port()
    proc = subprocess.Popen([str(TARGET / "release" / "wharf"), "serve", "--manifest", str(work / "components.toml"),
                             "--listen", f"127.0.0.1:{port}", "--admin-listen", "127.0.0.1:0",
                             "--data-dir", str(work / "data")], env=dict(os.environ, WHARF_LOG="warn"))
    try:
        wait_http(f"http://127.0.0.1:{port}/app/")
        admin = (work / "data" / "admin.addr").read_text().strip()
        # Compile both versions once so the timed reloads measure the swap.
        for v in versions + versions[:1]:
            install(v)
            urllib.request.urlopen(urllib.request.Request(f"http://{admin}/components/app/reload", method="POST")).read()
        out = {}
        duration = max(10, args.reloads // 20)
        wrk = threading.Thread(target=lambda: out.setdefault("text", subprocess.run(
            ["wrk", "-t2", f"-c{args.conns}", f"-d{duration}s", f"http://127.0.0.1:{port}/app/"],
            capture_output=True, text=True).stdout))
        wrk.start()
        time.sleep(1)
        took, refused, versions_seen = [], 0, set()
        gap = (duration - 3) / args.reloads
        for i in range(args.reloads):
            install(versions[(i + 1) % 2])
            started = time.perf_counter()
            request = urllib.request.Request(f"http://{admin}/components/app/reload", method="POST")
            try:
                body = json.loads(urllib.request.urlopen(request).read())
                versions_seen.add(body["version"])
            except Exception:
                refused += 1
            took.append((time.perf_counter() - started) * 1000)
            time.sleep(max(0.0, gap - took[-1] / 1000))
        wrk.join()
        text = out["text"]
        requests = int(re.search(r"(\d+) requests in", text).group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
        non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
        sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        socket_errors = sum(int(g) for g in sock.groups()) if sock else 0
        took.sort()
        print(f"\n{os.cpu_count()} cores; wrk -t2 -c{args.conns} for {duration}s; {args.reloads} reloads "
              f"alternating 2 versions ({len(versions_seen)} distinct seen)\n")
        print("| requests | req/s | non-2xx | socket errors | reloads | refused | reload p50 ms | reload p99 ms |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {requests:,} | {rps:,.0f} | {non2xx} | {socket_errors} | {args.reloads} | {refused} | "
              f"{statistics.median(took):.1f} | {took[int(len(took) * 0.99) - 1]:.1f} |")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
