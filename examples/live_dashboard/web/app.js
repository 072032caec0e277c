// The live dashboard's page logic: one WebSocket to /feed, the "orders" table kept from a
// snapshot plus enter/change/leave transitions, totals, a chart of changes per second, and
// reconnection that resumes with start.after on the same database (or takes a new snapshot when
// the history is gone or the server has another database).
"use strict";

const rows = new Map();        // document id -> document
let lastSequence = 0;          // the newest sequence applied (snapshot or event)
let database = null;           // the id of the database the rows came from (the snapshot's "database")
let changes = 0;
let retryMs = 500;
let connections = 0;           // WebSockets opened; with resyncs, markers for the browser test
let resyncs = 0;               // times the page started over from a snapshot after the first one
let snapshotSequence = 0;      // the sequence of the last snapshot, and the events applied since:
let eventsSince = 0;           // with nothing missed, lastSequence == snapshotSequence + eventsSince
let resumes = 0;               // reconnections that resumed with start.after (no new snapshot)
let duplicates = 0;            // events at or below lastSequence: already applied, skipped
let jumps = 0;                 // events whose sequence is not lastSequence + 1: normal when other
                               // collections are written too; the demo writes only "orders"
const buckets = new Array(60).fill(0);  // changes per second, oldest first
let bucketSecond = Math.floor(Date.now() / 1000);

const $ = (id) => document.getElementById(id);

function feedUrl() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const token = new URLSearchParams(location.search).get("token");
  return scheme + location.host + "/feed" + (token ? "?token=" + encodeURIComponent(token) : "");
}

function setStatus(text, cls) {
  $("status").textContent = text;
  $("status").className = "status " + (cls || "");
}

function subscribe(ws) {
  const base = { op: "subscribe", id: "orders", collection: "orders", filter: { transitions: true } };
  // First time: snapshot, then live. After a reconnect: exactly the events after the last one
  // seen, if the server still has the same database (it refuses with database_mismatch if not).
  if (lastSequence === 0) {
    ws.send(JSON.stringify({ ...base, snapshot: true }));
    return;
  }
  ws.send(JSON.stringify({ ...base, start: { after: lastSequence }, database }));
  const d = document.body.dataset;
  d.resumes = String(++resumes);
  d.resumedAfter = String(lastSequence);
}

// Starts over from a snapshot. `subscribed`: the subscription still exists (after `lagged`);
// after an error the server refused it, and there is nothing to unsubscribe.
function resync(ws, subscribed) {
  rows.clear();
  lastSequence = 0;
  database = null;
  document.body.dataset.resyncs = String(++resyncs);
  if (subscribed) ws.send(JSON.stringify({ op: "unsubscribe", id: "orders" }));
  subscribe(ws);
}

function connect() {
  setStatus("connecting");
  let live = false;                     // this connection delivered a snapshot or an event
  const ws = new WebSocket(feedUrl());
  ws.onopen = () => {
    retryMs = 500;
    document.body.dataset.connections = String(++connections);
    subscribe(ws);
  };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "snapshot") {
      rows.clear();
      for (const d of m.documents) rows.set(d.id, d.document);
      lastSequence = m.sequence;
      database = m.database;
      document.body.dataset.database = database;
      snapshotSequence = m.sequence;
      eventsSince = 0;
      render();
      live = true;
      setStatus("live", "live");
      document.body.dataset.ready = "1";   // a marker for the browser test
    } else if (m.type === "event") {
      const ev = m.event;
      if (ev.sequence <= lastSequence) {    // applied already: at most once
        document.body.dataset.duplicates = String(++duplicates);
        return;
      }
      if (ev.sequence !== lastSequence + 1) document.body.dataset.jumps = String(++jumps);
      if (m.transition === "leave") rows.delete(ev.document_id);
      else rows.set(ev.document_id, ev.document);
      lastSequence = ev.sequence;
      changes += 1;
      eventsSince += 1;
      tick(1);
      render(ev.document_id);
      if (!live) { live = true; setStatus("live", "live"); document.body.dataset.ready = "1"; }
    } else if (m.type === "lagged") {
      resync(ws, true);                     // events were dropped: start again from a snapshot
    } else if (m.type === "error") {
      document.body.dataset.lastError = m.code;
      // The history is gone, the server has another database, or a sequence from the future.
      if (m.code === "history_lost" || m.code === "database_mismatch" || m.code === "invalid_argument") {
        resync(ws, false);
      } else {
        setStatus("error: " + m.message, "down");
      }
    }
  };
  ws.onclose = () => {
    setStatus("reconnecting", "down");
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  };
}

function tick(n) {
  const now = Math.floor(Date.now() / 1000);
  while (bucketSecond < now) { buckets.shift(); buckets.push(0); bucketSecond += 1; }
  buckets[buckets.length - 1] += n;
}

function drawChart() {
  tick(0);
  const svg = $("chart");
  const max = Math.max(1, ...buckets);
  const w = 600 / buckets.length;
  svg.replaceChildren(...buckets.map((v, i) => {
    const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const h = (v / max) * 110;
    r.setAttribute("x", String(i * w + 1));
    r.setAttribute("y", String(120 - h));
    r.setAttribute("width", String(w - 2));
    r.setAttribute("height", String(h));
    return r;
  }));
}

function render(flashId) {
  let amount = 0;
  const body = $("rows");
  const trs = [];
  for (const [id, doc] of [...rows.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    amount += Number(doc.amount) || 0;
    const tr = document.createElement("tr");
    tr.dataset.id = id;
    if (id === flashId) tr.className = "flash";
    for (const [cls, text] of [["id", id.slice(-12)], ["", doc.customer], ["", doc.amount], ["", doc.status]]) {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      td.textContent = text === undefined ? "" : String(text);   // textContent: documents are data, never HTML
      tr.appendChild(td);
    }
    trs.push(tr);
  }
  body.replaceChildren(...trs);
  $("total-count").textContent = String(rows.size);
  $("total-amount").textContent = String(amount);
  $("last-sequence").textContent = String(lastSequence);
  $("changes").textContent = String(changes);
  document.body.dataset.snapshotSequence = String(snapshotSequence);
  document.body.dataset.eventsSince = String(eventsSince);
}

setInterval(drawChart, 1000);
drawChart();
connect();
