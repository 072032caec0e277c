// The Node.js peer of ws_bench (tests/bench/ws_bench.cpp): a `ws` WebSocket server at /feed that
// broadcasts event messages shaped like Aurora's FeedServer's (same keys in the same order, a
// random UUID as document id, an ISO timestamp) to every client that subscribed. Same command line
// as `ws_bench --role server`:
//
//   node server.js [--port 0] --clients 64 --events N [--rate R] [--timeout S]
//
// Prints "listening PORT", waits until `clients` clients have sent a message (their subscribe),
// then sends N events (as fast as it can, yielding to the event loop every 64 events like the
// Aurora writer, or R per second), each stamped with "t_ns" (process.hrtime, CLOCK_MONOTONIC)
// just before it is built; each event is serialised once and sent to every client, the usual
// broadcast with `ws`. Exits when the clients are gone, printing "cpu SECONDS" (user + system
// CPU time of the process).
"use strict";

const crypto = require("node:crypto");
const { WebSocketServer } = require("ws");

const options = { port: 0, clients: 64, events: 10000, rate: 0, timeout: 120 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, "");
  const value = Number(argv[i + 1]);
  if (!(key in options) || !Number.isInteger(value) || value < 0) {
    console.error("usage: node server.js [--port 0] [--clients 64] [--events N] [--rate PER_S] [--timeout S]");
    process.exit(2);
  }
  options[key] = value;
}
setTimeout(() => { console.error("ws peer: timed out"); process.exit(1); }, options.timeout * 1000).unref();

const wss = new WebSocketServer({ host: "127.0.0.1", port: options.port, path: "/feed", perMessageDeflate: false });
const subscribers = new Set();
let started = false;

wss.on("listening", () => console.log(`listening ${wss.address().port}`));
wss.on("connection", (ws) => {
  ws.on("message", () => {
    if (subscribers.has(ws)) return;
    subscribers.add(ws);
    if (subscribers.size === options.clients && !started) {
      started = true;
      produce();
    }
  });
  ws.on("close", () => {
    subscribers.delete(ws);
    if (started && subscribers.size === 0) {
      wss.close(() => {
        const cpu = process.cpuUsage();  // microseconds, this process, as ws_bench --role server reports it
        console.log(`cpu ${(cpu.user + cpu.system) / 1e6}`);
        process.exit(0);
      });
    }
  });
});

function message(sequence) {
  return JSON.stringify({
    event: {
      collection: "orders",
      commit: sequence,
      document: { amount: sequence % 500, customer: "ada", status: "new", t_ns: Number(process.hrtime.bigint()) },
      document_id: crypto.randomUUID(),
      old_document: null,
      operation: "insert",
      sequence,
      timestamp: new Date().toISOString(),
    },
    id: "s1",
    transition: "enter",
    type: "event",
  });
}

function broadcast(sequence) {
  const text = message(sequence);
  for (const ws of subscribers) ws.send(text);
}

function produce() {
  let next = 1;
  const start = process.hrtime.bigint();
  const step = () => {
    if (options.rate > 0) {
      const due = start + BigInt(Math.floor(((next - 1) * 1e9) / options.rate));
      const now = process.hrtime.bigint();
      if (now < due) {
        setTimeout(step, Number((due - now) / 1000000n));
        return;
      }
      broadcast(next++);
    } else {
      for (let k = 0; k < 64 && next <= options.events; ++k) broadcast(next++);
    }
    if (next <= options.events) setImmediate(step);
  };
  step();
}
