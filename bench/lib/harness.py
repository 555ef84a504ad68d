"""What every part of `bench/run` shares: the processes it starts (and kills,
whatever happens), wrk with a Lua `done()` hook for p99.9, manifests derived
from components.toml, a Wharf host with its /proc and /metrics readings, and
the throwaway PostgreSQL server of scripts/postgres.sh."""

import ctypes, http.client, json, os, re, resource, shutil, signal, socket, statistics, subprocess, sys
import tempfile, time, tomllib, urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
WASM = ROOT / "target" / "wasm32-wasip2" / "release"
WHARF = ROOT / "target" / "release" / "wharf"
BENCH_BIN = TARGET / "release"
WASMTIME_VERSION = "48.0.8"
WASMTIME_ROOT = Path.home() / ".cache" / "wharf-bench" / f"wasmtime-{WASMTIME_VERSION}"
WASMTIME = WASMTIME_ROOT / "bin" / "wasmtime"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - STARTED:7.1f}s] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A measurement that could not be taken; the row says why."""


# ---------------------------------------------------------------------------
# Processes: everything started here is killed on exit, by its own PID.

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # A server started from the main thread dies with bench/run even on SIGKILL.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Procs:
    """The processes and temp dirs of one run."""

    def __init__(self):
        self.procs = []
        self.dirs = []
        self.cleanups = []

    def start(self, argv, *, log_path=None, env=None, cwd=None, stdin=None, stdout=None):
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        proc = subprocess.Popen([str(a) for a in argv], stdout=stdout or out, stderr=out, stdin=stdin,
                                env=env, cwd=cwd, preexec_fn=_die_with_parent)
        if log_path:
            out.close()
        proc.log_path = log_path
        self.procs.append(proc)
        return proc

    def stop(self, proc, timeout=10):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def tempdir(self, prefix):
        path = Path(tempfile.mkdtemp(prefix=f"wharf-bench-{prefix}-"))
        self.dirs.append(path)
        return path

    def on_exit(self, fn):
        self.cleanups.append(fn)

    def stop_all(self):
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc)
            except Exception as e:  # keep cleaning up
                log(f"could not stop pid {proc.pid}: {e}")

    def close(self):
        self.stop_all()
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:
                log(f"cleanup failed: {e}")
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)


PROCS = Procs()


def raise_fd_limit():
    """10,000 WebSocket clients need 10,000 descriptors on each side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (65536, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, **kw)


def _ours(pid):
    """True when `pid` descends from this process."""
    while pid > 1:
        if pid == os.getpid():
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def foreign_load():
    """{pid: name} of cargo/rustc, and of wharf, wrk, hub-fanout or wasmtime processes this run
    did not start: anything else sharing the cores makes the figures low and noisy."""
    out = subprocess.run(["pgrep", "-x", "cargo|rustc|wharf|wrk|hub-fanout|wasmtime"], capture_output=True,
                         text=True).stdout.split()
    found = {}
    for pid in map(int, out):
        if not _ours(pid):
            try:
                found[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
    return found


class LoadWatch:
    """Samples foreign_load() every few seconds and adds up the CPU time those
    processes used meanwhile, for the report's warning."""

    def __init__(self, every=2.0):
        import threading
        self.cpu, self.last, self.every = {}, {}, every
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            for pid, name in foreign_load().items():
                try:
                    now = cpu_seconds(pid)
                except (OSError, ValueError, IndexError):
                    continue
                # A process first seen now: count what it used since the run began, at most.
                before = self.last.get(pid, max(0.0, now - (time.monotonic() - self.started)))
                self.cpu[name] = self.cpu.get(name, 0.0) + max(0.0, now - before)
                self.last[pid] = now
            self.stop.wait(self.every)

    def close(self):
        self.stop.set()
        self.thread.join()

    def share(self):
        """Foreign CPU time as a share of the machine's over the run so far."""
        wall = (time.monotonic() - self.started) * (os.cpu_count() or 1)
        return sum(self.cpu.values()) / wall if wall else 0.0

    def summary(self):
        """'wharf 12.0 CPU-s, cargo 3.1 CPU-s' or ''."""
        busy = {n: s for n, s in self.cpu.items() if s >= 0.5}
        return ", ".join(f"{n} {s:.1f} CPU-s" for n, s in sorted(busy.items(), key=lambda x: -x[1]))


# ---------------------------------------------------------------------------
# HTTP

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, headers=None, timeout=60):
    """One request on a fresh connection: (status, body bytes, headers)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"content-type": "application/json", **(headers or {})}
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


def get_json(url, timeout=60):
    status, body, _ = request("GET", url, timeout=timeout)
    if status != 200:
        raise BenchError(f"GET {url} -> {status}: {body[:200]!r}")
    return json.loads(body)


def wait_http(url, timeout=600, proc=None):
    """Polls until `url` answers 200; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"process exited ({proc.returncode}) before {url} answered; see {proc.log_path}")
        try:
            if request("GET", url, timeout=2)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.02)
    raise BenchError(f"{url} did not answer in {timeout} s")


# ---------------------------------------------------------------------------
# wrk

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKSTAT %d %d %d %d %.1f %.1f %.1f %.1f %.1f\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


def ensure_wrk():
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing and this is not root: apt-get install wrk")
    log("installing wrk (apt-get)")
    sh("apt-get", "update", "-qq", stdout=subprocess.DEVNULL)
    sh("apt-get", "install", "-y", "-qq", "wrk", stdout=subprocess.DEVNULL,
       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


_lua_dir = None


def _lua(method, body, headers):
    global _lua_dir
    if _lua_dir is None:
        _lua_dir = PROCS.tempdir("lua")
    lines = []
    if method != "GET":
        lines.append(f"wrk.method = {json.dumps(method)}")
    if body is not None:
        lines.append(f"wrk.body = {_lua_str(body)}")
    for k, v in (headers or {}).items():
        lines.append(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}")
    text = "\n".join(lines) + _DONE
    path = _lua_dir / f"s{abs(hash(text))}.lua"
    path.write_text(text)
    return path


def _lua_str(s):
    # A Lua long string holds any body without escaping.
    level = 0
    while f"]{'=' * level}]" in s:
        level += 1
    return f"[{'=' * level}[{s}]{'=' * level}]"


def wrk(url, conns, duration, *, method="GET", body=None, headers=None, threads=2, timeout=None):
    """Runs wrk; returns requests, seconds, req/s, latency mean/p50/p99/p999/max (ms), non-2xx, socket errors."""
    argv = ["wrk", f"-t{min(threads, conns)}", f"-c{conns}", f"-d{duration}s", "-s", _lua(method, body, headers)]
    if timeout:
        argv.append(f"--timeout={timeout}s")
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 120,
                         preexec_fn=_die_with_parent)
    m = re.search(r"^WRKSTAT (.*)$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        raise BenchError(f"wrk failed on {url}: {out.stderr.strip() or out.stdout.strip()}"[:300])
    f = m.group(1).split()
    requests, dur_us = int(f[0]), int(f[1])
    us = [float(x) / 1000 for x in f[4:]]
    return {"requests": requests, "seconds": dur_us / 1e6, "rps": requests / (dur_us / 1e6),
            "mean": us[0], "p50": us[1], "p99": us[2], "p999": us[3], "max": us[4],
            "non2xx": int(f[2]), "socket_errors": int(f[3])}


def aggregate(slices):
    """Many wrk slices of one cell: sum requests / sum time; median of the per-slice percentiles."""
    seconds = sum(s["seconds"] for s in slices)
    med = lambda k: statistics.median(s[k] for s in slices)  # noqa: E731
    return {"requests": sum(s["requests"] for s in slices), "seconds": seconds,
            "rps": sum(s["requests"] for s in slices) / seconds, "p50": med("p50"), "p99": med("p99"),
            "p999": med("p999"), "max": max(s["max"] for s in slices),
            "non2xx": sum(s["non2xx"] for s in slices), "socket_errors": sum(s["socket_errors"] for s in slices),
            "slices": len(slices)}


# ---------------------------------------------------------------------------
# Manifests

_PATH_KEYS = ("wasm", "crate", "migrations", "openapi")


def bundled_manifest():
    """components.toml as a dict, every file path made absolute."""
    data = tomllib.loads((ROOT / "components.toml").read_text())
    for comp in data.get("components", {}).values():
        for key in _PATH_KEYS:
            if key in comp:
                comp[key] = str(ROOT / comp[key])
        files = comp.get("grants", {}).get("files")
        if files:
            comp["grants"]["files"] = {k: str(ROOT / v) for k, v in files.items()}
    return data


def without_rate_limits(data):
    for comp in data.get("components", {}).values():
        for route in comp.get("routes", []):
            route.pop("rate_limit", None)
    return data


def _key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def dump_toml(data):
    """Writes the manifest shape: [section.name] tables of inline values."""
    out = []
    for section, tables in data.items():
        if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
            raise TypeError(f"unexpected manifest shape at `{section}`")
        for name, table in tables.items():
            out.append(f"[{_key(section)}.{_key(name)}]")
            out += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
            out.append("")
    return "\n".join(out)


def component(name, wasm, routes, **fields):
    return {name: {"wasm": str(WASM / wasm), "routes": [{"path": r} for r in routes], **fields}}


# ---------------------------------------------------------------------------
# A Wharf host

class Host:
    """`wharf serve` on free ports with its own data dir, read through /proc and /metrics."""

    def __init__(self, name, manifest, data_dir=None, database_url=None, extra=(), seed_cache=None):
        self.name = name
        self.work = PROCS.tempdir(name)
        self.manifest_path = self.work / "components.toml"
        self.manifest_path.write_text(manifest if isinstance(manifest, str) else dump_toml(manifest))
        self.data_dir = Path(data_dir) if data_dir else self.work / "data"
        cache = Path(seed_cache or "") / "cache" / "components"
        if seed_cache and cache.is_dir() and not (self.data_dir / "cache" / "components").exists():
            # Compiled modules of an earlier host: skip compiling where nothing is timed.
            shutil.copytree(cache, self.data_dir / "cache" / "components")
        self.database_url = database_url
        self.extra = list(extra)
        self.proc = None

    def start(self, wait="/readyz", timeout=900):
        """Starts and waits for `wait` to answer 200; returns the seconds from spawn to that."""
        self.port = free_port()
        env = dict(os.environ, WHARF_LOG=os.environ.get("WHARF_LOG", "warn"))
        env.pop("DATABASE_URL", None)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        started = time.monotonic()
        self.proc = PROCS.start([WHARF, "serve", "--manifest", self.manifest_path, "--listen", f"127.0.0.1:{self.port}",
                                 "--admin-listen", "127.0.0.1:0", "--data-dir", self.data_dir, *self.extra],
                                log_path=self.work / "wharf.log", env=env)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_http(self.base + wait, timeout=timeout, proc=self.proc)
        took = time.monotonic() - started
        self.admin = "http://" + (self.data_dir / "admin.addr").read_text().strip()
        return took

    def stop(self):
        if self.proc:
            PROCS.stop(self.proc)
            self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def cpu_seconds(self):
        return cpu_seconds(self.pid)

    def status(self, field):
        return proc_status_kb(self.pid, field)

    def metrics(self):
        status, body, _ = request("GET", self.admin + "/metrics")
        return body.decode() if status == 200 else ""

    def jobs(self, comp):
        return get_json(self.admin + "/readyz")["components"][comp].get("jobs", {})

    def wait_drained(self, comp, limit):
        """Waits until `comp` has no queued or running job, or `limit` seconds; True when drained."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            j = self.jobs(comp)
            if j.get("queued", 0) + j.get("running", 0) == 0:
                return True
            time.sleep(0.2)
        return False


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def proc_status_kb(pid, field):
    m = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) if m else 0


def established(port):
    """TCP connections established to local `port` (each of wrk's has one request in flight)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


def histogram(text, name, labels):
    """(sum, count, [(le, cumulative count)]) of one Prometheus histogram series."""
    sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = count = 0.0
    buckets = []
    for line in text.splitlines():
        if not line.startswith(name) or sel not in line:
            continue
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith(name + "_sum"):
            total = value
        elif line.startswith(name + "_count"):
            count = value
        elif line.startswith(name + "_bucket"):
            le = re.search(r'le="([^"]+)"', line).group(1)
            buckets.append((float("inf") if le == "+Inf" else float(le), value))
    return total, count, sorted(buckets)


def histogram_delta(before, after):
    return (after[0] - before[0], after[1] - before[1],
            [(le, a - b) for (le, a), (_, b) in zip(after[2], before[2] or [(le, 0) for le, _ in after[2]])])


def histogram_quantile(buckets, count, q):
    """The upper bound of the bucket holding quantile q (Prometheus buckets are coarse)."""
    for le, cum in buckets:
        if count and cum >= q * count:
            return le
    return float("nan")


# ---------------------------------------------------------------------------
# PostgreSQL (scripts/postgres.sh, kept alive by a bash that waits on our pipe)

def start_postgres():
    """Starts the throwaway server of scripts/postgres.sh; returns its URL or None."""
    # The TERM/INT/HUP trap makes bash exit through postgres.sh's EXIT trap,
    # which stops the server, however bench/run ends.
    script = ('source scripts/postgres.sh >&2; start_test_postgres >&2; trap "exit 0" TERM INT HUP; '
              'echo "URL=${WHARF_TEST_POSTGRES_URL:-}"; read -r _ || true')
    proc = PROCS.start(["bash", "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       log_path=PROCS.tempdir("pg-log") / "postgres.log")
    line = proc.stdout.readline().decode().strip()
    # Closing bash's stdin ends its `read`; its EXIT trap stops PostgreSQL.
    PROCS.on_exit(lambda: (proc.stdin.close(), proc.wait(30)))
    PROCS.procs.remove(proc)
    url = line.removeprefix("URL=")
    return url or None


def fmt_int(x):
    return "–" if x is None else f"{x:,.0f}"


def fmt_ms(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"
