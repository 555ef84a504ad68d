"""The one markdown report of `bench/run`: hello, ratios and targets, per
request, features, resources; every row with its target where the issue
gives one, marked MET or MISSED."""

import math, statistics

from harness import fmt_int, fmt_ms


class Targets:
    """Collects the MET/MISSED verdicts for the summary line."""

    def __init__(self):
        self.met = self.missed = 0

    def __call__(self, value, op, target):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        ok = value >= target if op == ">=" else value <= target
        self.met += ok
        self.missed += not ok
        return "MET" if ok else "**MISSED**"


def _err(d):
    return d.get("error") if isinstance(d, dict) else None


def _get(d, key):
    return (d or {}).get(key) or {"error": "not measured"}


def _mb(kb):
    return kb * 1024 / 1e6


def hello_section(h, args):
    out = ["## Hello", "",
           f"Same bytes from every server; `wrk -t2`, {args.rounds} interleaved rounds × {args.slice} s slices per "
           "cell (each round runs every server in turn, in a rotating order). req/s = Σ requests / Σ time; "
           "p50/p99/p99.9 = median over the rounds of each slice's wrk percentile (p99.9 from wrk's Lua `done()`).",
           "", "| server | conns | req/s | p50 ms | p99 ms | p99.9 ms | errors | notes |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for t in h["targets"]:
        if t.error:
            out.append(f"| {t.name} | – | failed to start | | | | | {t.error[:80]} |")
            continue
        for c in t.levels:
            cell = h["cells"].get((t.name, c))
            if not cell:
                out.append(f"| {t.name} | {c} | no data | | | | | |")
                continue
            out.append(f"| {t.name} | {c} | {fmt_int(cell['rps'])} | {fmt_ms(cell['p50'])} | {fmt_ms(cell['p99'])} | "
                       f"{fmt_ms(cell['p999'])} | {cell['non2xx'] + cell['socket_errors']} | {t.note if c == t.levels[0] else ''} |")
    for name, note, why in h["skipped"]:
        out.append(f"| {name} | 1, 64, 256 | {why} | | | | | {note} |")
    return out


def _cell(h, name, c=64):
    return (h["cells"].get((name, c)) or {}) if h else {}


def ratios_section(h, verdict):
    out = ["## Ratios and targets (64 connections)", "", "| ratio | value | target | |", "|---|---:|---:|---|"]
    if not h:
        return out + ["| (hello section not run) | | | |"]
    plain = _cell(h, "wharf hello-plain").get("rps")

    def ratio(label, other_name, op, target, other=None):
        other = other if other is not None else _cell(h, other_name).get("rps")
        value = plain / other if plain and other else None
        shown = f"{value:.2f}×" if value else ("wasmtime not installed" if other_name.startswith("wasmtime") else "–")
        out.append(f"| {label} | {shown} | {'≥' if op == '>=' else '≤'} {target}× | {verdict(value, op, target)} |")

    ratio("hello-plain / `wasmtime serve` default", "wasmtime serve, default", ">=", 3)
    tuned = [(n, _cell(h, n).get("rps")) for n in ("wasmtime serve, tuned", "wasmtime serve, tuned + pagemap-scan")]
    tuned = [(n, r) for n, r in tuned if r]
    best = max(tuned, key=lambda x: x[1]) if tuned else ("wasmtime serve, tuned + pagemap-scan", None)
    ratio(f"hello-plain / best tuned fresh `wasmtime serve` ({best[0].split(', ', 1)[1]})", best[0], ">=", 1.5, best[1])
    ratio("hello-plain / native hyper", "native hyper", ">=", 0.25)
    reuse = _cell(h, "wasmtime serve, p2 instance reuse").get("rps")
    out.append(f"| hello-plain / `wasmtime serve` p2 instance reuse (no target) | "
               f"{f'{plain / reuse:.2f}×' if plain and reuse else 'wasmtime not installed'} | – | |")
    for label, ours, theirs in [
        ("Wharf p2 reuse / `wasmtime serve` p2 reuse", "wharf hello-plain, reuse", "wasmtime serve, p2 instance reuse"),
        ("Wharf p3 reuse / `wasmtime serve` p3 default reuse", "wharf p3 hello, reuse", "wasmtime serve, p3, default reuse"),
    ]:
        a, b = _cell(h, ours).get("rps"), _cell(h, theirs).get("rps")
        value = a / b if a and b else None
        shown = f"{value:.2f}×" if value else ("wasmtime not installed" if a else "–")
        out.append(f"| {label} | {shown} | > 1× | {verdict(value, '>=', 1.0)} |")
    p99 = _cell(h, "wharf hello-plain").get("p99")
    out.append(f"| hello-plain p99 | {fmt_ms(p99)} ms | ≤ 5 ms | {verdict(p99, '<=', 5)} |")
    acme, hello_rps = _cell(h, "wharf acme, warm cache").get("rps"), _cell(h, "wharf hello").get("rps")
    value = acme / hello_rps if acme and hello_rps else None
    out.append(f"| Acme warm / Wharf hello | {f'{value:.2f}×' if value else '–'} | ≥ 0.5× | {verdict(value, '>=', 0.5)} |")
    return out


def per_request_section(h, verdict):
    out = ["## Per request (Wharf hello-plain, 64 connections)", "", "| figure | value | target | how | |",
           "|---|---:|---:|---|---|"]
    if not h:
        return out + ["| (hello section not run) | | | | |"]
    mean = h.get("inst_mean_us")
    how = (f"`wharf_instantiate_duration_seconds{{component=\"hello-plain\"}}` on the operator API's /metrics, "
           f"Δ over the 64-connection slices ({fmt_int(h.get('inst_count'))} instantiations)")
    out.append(f"| instantiation, mean | {fmt_ms(mean, 1)} µs | ≤ 10 µs | Δsum / Δcount of {how} | {verdict(mean, '<=', 10)} |")
    p99 = h.get("inst_p99_le_us")
    lowest = h["inst_buckets"][0][0] * 1e6 if h.get("inst_buckets") else None
    out.append(f"| instantiation, p99 | ≤ {fmt_ms(p99, 0)} µs | – | upper bound of the histogram bucket holding the "
               f"99th percentile (the lowest bucket is ≤ {fmt_ms(lowest, 0)} µs) | |")
    cpu = h.get("cpu_us_per_request")
    out.append(f"| host CPU per request | {fmt_ms(cpu, 1)} µs | – | Δ(utime + stime) of the wharf process in "
               f"/proc/PID/stat / {fmt_int(h.get('cpu_requests'))} requests, same slices | |")
    return out


def features_section(f, args, verdict):
    out = ["## Features", "",
           f"One host per backend serving every bundled component (+ `storetest`); wrk load slices of {args.load} s; "
           f"queues drained for at most {args.drain} s.", "",
           "| feature | figure | value | target | |", "|---|---|---:|---:|---|"]
    if not f:
        return out + ["| (features section not run) | | | | |"]

    def row(feature, figure, value, target="–", mark=""):
        out.append(f"| {feature} | {figure} | {value} | {target} | {mark} |")

    a = _get(f, "acme")
    if _err(a):
        row("Acme cold", "error", _err(a))
    else:
        cold, warm = statistics.median(a["cold"]), statistics.median(a["warm"])
        row("Acme cold (fresh host, first request)", f"median ms of {len(a['cold'])}; upstream round trips",
            f"{cold:.0f} ms; {cold / a['latency']:.2f}", f"ideal 3 × {a['latency']} ms")
        row("Acme warm (same request again)", "median ms (req/s: hello table, target under ratios)", f"{warm:.1f} ms")
    for backend in ("sqlite", "postgres"):
        e = _get(f, f"eye_{backend}")
        name = "eye, SQLite" if backend == "sqlite" else "eye, PostgreSQL"
        if _err(e):
            row(name, "error", _err(e))
            continue
        note = "" if e["drained"] else f" (not drained after {e['elapsed']:.0f} s)"
        if backend == "sqlite":
            row(name, "accepted/s (202, wrk -c64 POST)", fmt_int(e["accepted"]), "≥ 15,000", verdict(e["accepted"], ">=", 15000))
            row(name, "processed/s (stored / time to drain)" + note, fmt_int(e["processed"]), "≥ 10,000",
                verdict(e["processed"], ">=", 10000))
        else:
            row(name, "accepted/s (202, wrk -c64 POST)", fmt_int(e["accepted"]))
            row(name, "processed/s (stored / time to drain)" + note, fmt_int(e["processed"]), "≥ 5,000",
                verdict(e["processed"], ">=", 5000))
    for backend in ("sqlite", "postgres"):
        q = _get(f, f"queue_{backend}")
        name = f"queue (storetest), {'SQLite' if backend == 'sqlite' else 'PostgreSQL'}"
        if _err(q):
            row(name, "error", _err(q))
            continue
        note = "" if q["drained"] else f" (not drained after {q['elapsed']:.0f} s)"
        row(name, "jobs completed/s" + note, fmt_int(q["completed"]))
        row(name, "jobs enqueued/s (HTTP, wrk -c32)", fmt_int(q["enqueued"]))
    hub = _get(f, "hub")
    if _err(hub):
        row("hub", "error", _err(hub))
    else:
        for key, clients in (("hub_1000", "1,000"), ("hub_10000", "10,000")):
            r = _get(hub, key)
            if _err(r):
                row(f"hub → {clients} clients", "error", _err(r))
                continue
            detail = f"{r['batches']} events back to back, {r['complete']:,} clients got all"
            target = ("≥ 1,000,000", verdict(r["per_s"], ">=", 1e6)) if key == "hub_10000" else ("–", "")
            row(f"hub → {clients} clients", f"deliveries/s ({detail})", fmt_int(r["per_s"]), *target)
            row(f"hub → {clients} clients", "p99 ms (POST start → arrival)", fmt_ms(r["p99"], 1))
        m0, m1 = _get(hub, "mandrill_0"), _get(hub, "mandrill_1000")
        if not _err(m0):
            row("Mandrill 1000-event batch, 0 clients", f"POST ms, mean of {m0['batches'].split(' ')[0]}",
                fmt_ms(m0["post_ms"], 1))
        if not _err(m1):
            value = m1["post_ms"] / m0["post_ms"] if not _err(m0) and m0["post_ms"] else None
            row("Mandrill 1000-event batch, 1,000 clients", f"POST ms, mean of {m1['batches'].split(' ')[0]}; vs 0 clients",
                f"{fmt_ms(m1['post_ms'], 1)}; {f'{value:.2f}×' if value else '–'}", "≤ 2×", verdict(value, "<=", 2))
        for key in ("mandrill_0", "mandrill_1000"):
            if _err(_get(hub, key)):
                row(f"Mandrill ({key})", "error", _err(_get(hub, key)))
    lg = _get(f, "login")
    if _err(lg):
        row("login (argon2id)", "error", _err(lg))
    else:
        row("login (argon2id)", f"answers/s (wrk -c8), p99 {fmt_ms(lg['p99'], 0)} ms, {lg['non2xx']} non-2xx", fmt_int(lg["rps"]))
    c = _get(f, "content")
    if _err(c):
        row("content top-contents", "error", _err(c))
    else:
        row(f"content top-contents over {c['books']:,} books, {c['interactions']:,} interactions",
            f"req/s (wrk -c16, first page), p99 {fmt_ms(c['p99'], 0)} ms", fmt_int(c["rps"]))
        row("content seeding", f"{c['books'] // 10000 or 1} CSV uploads, then reads + likes over the API",
            f"{c['books_s']:.0f} s books + {c['seed_s'] - c['books_s']:.0f} s interactions")
    o = _get(f, "orders")
    if _err(o):
        row("orders", "error", _err(o))
    else:
        row("orders (simulators in-process, delay 0)", f"created/s (wrk -c16), p99 {fmt_ms(o['p99'], 0)} ms, "
            f"{o['non2xx']} non-2xx", fmt_int(o["rps"]))
    return out


def resources_section(r, verdict):
    out = ["## Resources", "", "| figure | value | target | how | |", "|---|---:|---:|---|---|"]
    if not r:
        return out + ["| (resources section not run) | | | | |"]
    s = _get(r, "startup")
    if _err(s):
        out.append(f"| start | error | | {_err(s)} | |")
    else:
        n = s["components"]
        out.append(f"| start → /readyz, empty compile cache | {s['cold_s']:.1f} s | – | fresh --data-dir, {n} bundled components | |")
        out.append(f"| start → /readyz, warm compile cache | {s['warm_s']:.2f} s | – | same --data-dir again (DATA_DIR/cache/components) | |")
        out.append(f"| RSS idle, all components | {_mb(s['warm_rss_kb']):.0f} MB | – | VmRSS 2 s after the warm start "
                   f"({_mb(s['cold_rss_kb']):.0f} MB after the cold one) | |")
    i = _get(r, "inflight")
    if _err(i):
        out.append(f"| RSS, 1,000 in flight | error | | {_err(i)} | |")
    else:
        peak = _mb(i["peak_kb"])
        out.append(f"| RSS, 1,000 requests in flight | {peak:.0f} MB | ≤ 200 MB | peak VmRSS (sampled every 100 ms; "
                   f"VmHWM {_mb(i['hwm_kb']):.0f} MB, idle before {_mb(i['idle_kb']):.0f} MB) while wrk -c1000 holds "
                   f"misbehave `/misbehave/slow?ms={i['slow_ms']}`, an instance that sleeps ({i['conns']:,} connections "
                   f"established at most, each with its request in flight), {i['non2xx'] + i['socket_errors']} errors | "
                   f"{verdict(peak, '<=', 200)} |")
    h = _get(r, "hotswap")
    if _err(h):
        out.append(f"| reload under load | error | | {_err(h)} | |")
    else:
        out.append(f"| reload under load: failed requests | {h['failed']} | 0 | wrk -c256 for {h['seconds']} s "
                   f"({fmt_int(h['requests'])} requests) during {h['reloads']} reloads ({h['refused']} refused) | "
                   f"{verdict(h['failed'], '<=', 0)} |")
        out.append(f"| reload latency p50 / p99 | {h['p50']:.1f} / {h['p99']:.1f} ms | – | POST /components/app/reload "
                   "on the operator API, hello.wasm ⇄ hello_plain.wasm | |")
    return out


def render(header, results, args):
    verdict = Targets()
    failed = []
    for name in ("hello", "features", "resources"):
        if _err(results.get(name)):
            failed.append(f"**The {name} section failed**: {_err(results[name])}")
            results[name] = None
    if failed:
        header = header + [""] + failed
    h = results.get("hello")
    lines = header + [""]
    lines += hello_section(h, args) + [""] if h else ["## Hello", "", "(not run)", ""]
    lines += ratios_section(h, verdict) + [""]
    lines += per_request_section(h, verdict) + [""]
    lines += features_section(results.get("features"), args, verdict) + [""]
    lines += resources_section(results.get("resources"), verdict) + [""]
    lines.append(f"Targets: {verdict.met} met, {verdict.missed} missed (rows marked – were not measured).")
    return "\n".join(lines) + "\n"
