//! The live page at `/`: no external assets; connects to `/ws/email/`,
//! shows each event as it arrives (newest first), shows the connection
//! state, and reconnects by itself, resuming with `?after=<last id>`.

pub(crate) const HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mandrill events — live</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d232b; background: #f6f7f9; }
  body { margin: 0; }
  header { display: flex; align-items: center; gap: 1rem; padding: 1rem 1.5rem; background: #fff; border-bottom: 1px solid #dde1e6; }
  h1 { font-size: 1.2rem; margin: 0; }
  #state { font-size: .85rem; padding: .2rem .6rem; border-radius: 999px; background: #eee; }
  #state.connected { background: #d7f5dd; color: #135c22; }
  #state.disconnected { background: #fde2e1; color: #8a1c16; }
  main { padding: 1rem 1.5rem; }
  table { width: 100%; border-collapse: collapse; background: #fff; }
  th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #eceff2; font-size: .9rem; }
  th { background: #fafbfc; font-weight: 600; }
  tr.new { animation: flash 1.5s ease-out; }
  @keyframes flash { from { background: #fff7c2; } to { background: transparent; } }
  .event { font-family: ui-monospace, monospace; }
  #empty { color: #6b7580; padding: 1rem 0; }
</style>
</head>
<body>
<header><h1>Mandrill events</h1><span id="state">connecting</span><span id="count"></span></header>
<main>
  <table>
    <thead><tr><th>Event</th><th>Email</th><th>Subject</th><th>Time (UTC)</th></tr></thead>
    <tbody id="events"></tbody>
  </table>
  <div id="empty">No events yet. Post a webhook to <code>/api/hook/</code>.</div>
</main>
<script>
"use strict";
const rows = document.getElementById("events");
const stateEl = document.getElementById("state");
const empty = document.getElementById("empty");
const seen = new Set();
let lastId = null;
let retryDelay = 500;

function setState(text, cls) { stateEl.textContent = text; stateEl.className = cls || ""; }

function time(ts) {
  const d = new Date(ts * 1000);
  return isNaN(d) ? "" : d.toISOString().replace(".000Z", "Z");
}

function show(ev, atTop) {
  if (!ev || !ev.id || seen.has(ev.id)) return;
  seen.add(ev.id);
  const tr = document.createElement("tr");
  tr.dataset.id = ev.id;
  for (const [text, cls] of [[ev.event, "event"], [ev.email || "", ""], [ev.subject || "", ""], [time(ev.ts), ""]]) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  if (atTop) { tr.className = "new"; rows.prepend(tr); } else { rows.appendChild(tr); }
  empty.style.display = "none";
}

async function loadRecent() {
  try {
    const response = await fetch("/api/events/?limit=100");
    const page = await response.json();
    for (const ev of page.items || []) show(ev, false);
  } catch (e) { /* the live stream still works; the list is a courtesy */ }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = scheme + "://" + location.host + "/ws/email/" + (lastId ? "?after=" + encodeURIComponent(lastId) : "");
  setState("connecting");
  const ws = new WebSocket(url);
  ws.onopen = () => {
    setState("connected", "connected");
    retryDelay = 500;
    if (!lastId) loadRecent();
  };
  ws.onmessage = (message) => {
    let ev;
    try { ev = JSON.parse(message.data); } catch (e) { return; }
    if (ev.type === "replay_truncated") { loadRecent(); return; }
    show(ev, true);
    lastId = ev.id;
  };
  ws.onclose = (close) => {
    // 1008: the id we resumed from is unknown here; start over.
    if (close.code === 1008) lastId = null;
    setState("disconnected, reconnecting", "disconnected");
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  };
}

connect();
</script>
</body>
</html>
"##;
