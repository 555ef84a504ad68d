"""The features section: each SPEC feature under load on a host serving every
bundled component (plus `storetest` for the queue), per database backend.
The bench manifest differs from components.toml only where a figure needs
it: no per-route rate limits (they would cap login and CSV uploads), room for
20,000 hub clients, and the order simulators without their 300/200 ms delay."""

import concurrent.futures, http.client, json, re, subprocess, threading, time, urllib.parse

from harness import (BENCH_BIN, PROCS, ROOT, BenchError, Host, bundled_manifest, component, get_json, log, request,
                     without_rate_limits, wrk)
import hello

USER = "7c11e1ce2741"  # the seed's user (SPEC §5)
PRODUCT = "classic-box"


def manifest():
    data = without_rate_limits(bundled_manifest())
    data["websockets"]["email"]["max_clients"] = 20000
    for sim in ("user-service", "product-service"):
        data["components"][sim]["config"]["delay_ms"] = "0"
    data["components"] |= component(
        "storetest", "storetest.wasm", ["/store/*"], grants={"interfaces": ["store", "queue"]},
        migrations=str(ROOT / "tests/components/storetest/migrations"), limits={"max_instances": 200},
        queue={"workers": 2})
    return data


def start_host(backend, data_dir, database_url=None, seed_cache=None):
    host = Host(f"features-{backend}", manifest(), data_dir=data_dir, database_url=database_url,
                seed_cache=seed_cache, extra=["--max-connections-per-ip", "20000", "--max-connections", "30000"])
    log(f"features: starting wharf with every bundled component on {backend}")
    took = host.start()
    log(f"features: {backend} host ready in {took:.1f} s")
    return host


def drained_rate(host, comp, started, drain_limit, count):
    drained = host.wait_drained(comp, drain_limit)
    elapsed = time.monotonic() - started
    return count() / elapsed, drained, elapsed


def eye(host, args):
    """accepted/s: wrk POSTs events for the slice, each answered 202; processed/s:
    events stored / time from the first POST until the queue is drained."""
    sid = json.loads(request("POST", host.base + "/eye/sessions/", {})[1])["id"]
    body = json.dumps({"session": {"id": sid}, "category": "page interaction", "name": "pageview",
                       "data": {"host": "www.example.com", "path": "/"}, "timestamp": "2021-06-15 00:00:00"})
    started = time.monotonic()
    w = wrk(host.base + "/eye/events/", 64, args.load, method="POST", body=body,
            headers={"Content-Type": "application/json"})
    accepted = (w["requests"] - w["non2xx"]) / w["seconds"]
    processed, drained, elapsed = drained_rate(
        host, "eye", started, args.drain, lambda: get_json(host.base + f"/eye/events/?session={sid}&limit=1")["total"])
    return {"accepted": accepted, "processed": processed, "drained": drained, "elapsed": elapsed,
            "accepted_total": w["requests"] - w["non2xx"], "non2xx": w["non2xx"], "p99": w["p99"]}


def queue(host, args):
    """Jobs enqueued over HTTP for the slice (storetest: each job two INSERTs),
    completed/s = jobs done / time from the first enqueue until drained."""
    before = host.jobs("storetest").get("done", 0)
    started = time.monotonic()
    w = wrk(host.base + "/store/enqueue", 32, args.load, method="POST",
            body=json.dumps({"queue": "bench", "payload": {"effect": "x"}}), headers={"Content-Type": "application/json"})
    done, drained, elapsed = drained_rate(host, "storetest", started, args.drain,
                                          lambda: host.jobs("storetest").get("done", 0) - before)
    return {"enqueued": (w["requests"] - w["non2xx"]) / w["seconds"], "completed": done, "drained": drained,
            "elapsed": elapsed}


def hub_fanout(host, clients, batches, size, pause_ms):
    out = subprocess.run([str(BENCH_BIN / "hub-fanout"), host.base, str(clients), str(batches), str(size),
                          str(pause_ms)], capture_output=True, text=True, timeout=600)
    row = [c.strip() for c in out.stdout.strip().splitlines()[-1].strip("|").split("|")] if out.stdout.strip() else []
    if out.returncode != 0 or len(row) != 8:
        raise BenchError(f"hub-fanout {clients} {batches} {size}: {(out.stderr or out.stdout).strip()[-300:]}")
    complete = int(re.search(r"\((\d+) complete\)", row[0]).group(1))
    return {"clients": clients, "complete": complete, "batches": f"{batches} × {size}", "deliveries": int(row[2]),
            "per_s": float(row[3]), "p50": float(row[4]), "p99": float(row[5]), "max": float(row[6]),
            "post_ms": float(row[7])}


def hub(host, args):
    runs = {}
    plan = [("mandrill_0", 0, args.mandrill_batches, 1000, 100),
            ("mandrill_1000", 1000, args.mandrill_batches, 1000, 100),
            ("hub_1000", 1000, args.hub_batches, 100, 0),
            ("hub_10000", 10000, args.hub_batches, 100, 0)]
    for key, clients, batches, size, pause in plan:
        log(f"features: hub-fanout {clients} clients, {batches} x {size} events")
        try:
            runs[key] = hub_fanout(host, clients, batches, size, pause)
        except (BenchError, subprocess.TimeoutExpired) as e:
            runs[key] = {"error": str(e)}
            log(f"features: {e}")
    return runs


def new_user(host, email, password="bench-password-1"):
    status, body, _ = request("POST", host.base + "/api/auth/users/", {
        "email_id": email, "first_name": "Bench", "last_name": "Mark", "password": password, "phone_no": "+1 555 0100"})
    if status != 201:
        raise BenchError(f"creating a user: {status} {body[:200]!r}")
    status, body, _ = request("POST", host.base + "/api/auth/login/", {"email_id": email, "password": password})
    if status != 200:
        raise BenchError(f"login: {status} {body[:200]!r}")
    return json.loads(body)["access"]


def login(host, args):
    """Answers/s of POST /api/auth/login/ (argon2id verify per answer), 8 connections."""
    email, password = "login-bench@example.com", "bench-password-1"
    new_user(host, email, password)
    w = wrk(host.base + "/api/auth/login/", 8, args.load, method="POST",
            body=json.dumps({"email_id": email, "password": password}), headers={"Content-Type": "application/json"})
    return {"rps": (w["requests"] - w["non2xx"]) / w["seconds"], "p99": w["p99"], "non2xx": w["non2xx"]}


def _multipart(csv_bytes):
    boundary = "wharf-bench-boundary-7f3a"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csv_file\"; filename=\"books.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode()
    return head + csv_bytes + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _post_many(base, paths_bodies, token, workers=8):
    """POSTs JSON bodies on `workers` keep-alive connections; returns status counts."""
    local = threading.local()
    u = urllib.parse.urlsplit(base)

    def one(item):
        path, body = item
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        local.conn.request("POST", path, body=json.dumps(body),
                           headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
        resp = local.conn.getresponse()
        resp.read()
        return resp.status

    counts = {}
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for status in pool.map(one, paths_bodies, chunksize=64):
            counts[status] = counts.get(status, 0) + 1
    return counts


def content(host, args):
    """Seeds args.books books (CSV uploads of 10,000) and reads + likes over the
    API, then GET /api/content/books/top-contents/ (first page) under wrk."""
    token = new_user(host, "content-bench@example.com")
    started = time.monotonic()
    ids = []
    for first in range(0, args.books, 10000):
        n = min(10000, args.books - first)
        csv = "title,author_id,description,story\r\n" + "".join(
            f"Book {first + i},,,Once upon a time {first + i}.\r\n" for i in range(n))
        body, ctype = _multipart(csv.encode())
        status, answer, _ = request("POST", host.base + "/api/content/books/upload-csv/", body,
                                    {"content-type": ctype, "authorization": f"Bearer {token}"}, timeout=120)
        if status != 201:
            raise BenchError(f"CSV upload: {status} {answer[:200]!r}")
        ids += json.loads(answer)["ids"]
    books_s = time.monotonic() - started
    reads = ids[: args.reads]
    likes = ids[: args.reads // 5]
    counts = _post_many(host.base, [("/api/user-interaction/read/", {"content_id": i}) for i in reads]
                        + [("/api/user-interaction/like/", {"content_id": i}) for i in likes], token)
    seeded_s = time.monotonic() - started
    if set(counts) != {201}:
        raise BenchError(f"interactions answered {counts}")
    url = host.base + "/api/content/books/top-contents/"
    first = get_json(url)
    if first["total"] != len(ids) or first["items"][0].get("interactions") != 2:
        raise BenchError(f"top-contents looks wrong: total {first['total']}, first {first['items'][:1]}")
    w = wrk(url, 16, args.load)
    return {"books": len(ids), "interactions": len(reads) + len(likes), "books_s": books_s, "seed_s": seeded_s,
            "rps": w["rps"], "p50": w["p50"], "p99": w["p99"], "non2xx": w["non2xx"]}


def orders(host, args):
    """Orders created/s: POST /v1/order, 16 connections; each order fetches the user and
    product simulators in-process (delay 0 here) and writes order + outbox message."""
    w = wrk(host.base + "/v1/order", 16, args.load, method="POST",
            body=json.dumps({"user_id": USER, "product_code": PRODUCT}), headers={"Content-Type": "application/json"})
    return {"rps": (w["requests"] - w["non2xx"]) / w["seconds"], "p50": w["p50"], "p99": w["p99"],
            "non2xx": w["non2xx"]}


def acme_cold(args):
    """A fresh host per sample (the outbound cache lives in memory; the compile
    cache in the reused data dir), first request for the user, then a second."""
    host = Host("acme", {"components": hello.acme_components(hello.ACME_LATENCY_MS)})
    url = f"/api/recent_purchases/{hello.ACME_USER}"
    cold, warm = [], []
    for i in range(args.cold_samples):
        host.start()
        for into in (cold, warm):
            started = time.monotonic()
            status, _, _ = request("GET", host.base + url)
            into.append((time.monotonic() - started) * 1000)
            if status != 200:
                raise BenchError(f"acme answered {status}")
        host.stop()
    return {"cold": cold, "warm": warm, "latency": hello.ACME_LATENCY_MS}


def run(args, pg_url, seed_cache=None):
    res = {}

    def attempt(key, fn, *a):
        log(f"features: {key}")
        try:
            res[key] = fn(*a)
        except (BenchError, OSError, subprocess.TimeoutExpired) as e:
            res[key] = {"error": str(e)}
            log(f"features: {key}: {e}")

    attempt("acme", acme_cold, args)
    sqlite_dir = PROCS.tempdir("features-sqlite-data")
    host = start_host("sqlite", sqlite_dir, seed_cache=seed_cache)
    for key, fn in [("eye_sqlite", eye), ("queue_sqlite", queue), ("login", login), ("orders", orders),
                    ("hub", hub), ("content", content)]:
        attempt(key, fn, host, args)
    host.stop()
    if pg_url:
        db = "wharf_bench"
        subprocess.run(["psql", pg_url, "-qc", f"CREATE DATABASE {db}"], check=True, capture_output=True)
        host = start_host("postgres", PROCS.tempdir("features-pg-data"), pg_url.rsplit("/", 1)[0] + "/" + db,
                          seed_cache=sqlite_dir)
        attempt("eye_postgres", eye, host, args)
        attempt("queue_postgres", queue, host, args)
        host.stop()
    else:
        res["eye_postgres"] = res["queue_postgres"] = {"error": "PostgreSQL not available"}
    return res
