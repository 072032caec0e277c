// Aurora's browser test: the live dashboard (examples/live_dashboard) in headless Chromium.
//
//   node browser_test.js <live_dashboard executable> <screenshot.png>
//
// 1. Starts `live_dashboard --demo --print-totals --interval 20 --port 0`; its first stdout line
//    gives the address, then it prints the database's totals after every write
//    (`totals {"sequence":S,"orders":N,"amount":A}`, computed from db.snapshot("orders")).
// 2. Opens the page, waits until it is live (snapshot applied) and has seen sequence >= 100, then
//    asserts, at the sequence S the page shows: its order count and amount equal the database's
//    totals at S, its table has that many rows, and S == snapshot sequence + events applied since
//    (the demo writes only "orders", so the page's events are gapless: nothing missed, nothing
//    twice).
// 3. Kills the server (SIGKILL), waits until the page shows it is no longer live, and starts the
//    server again on the same port. The new server has a fresh in-memory database (sequences
//    start at 1 again) and writes every 200 ms, so for about 20 s it stays behind the sequence
//    the page holds: the page's resume (`start.after`) is refused as a sequence from the future
//    (invalid_argument) and the page must start over from a snapshot. Asserts: a second
//    WebSocket was opened, exactly one resync happened, the page is live again, and the checks of
//    step 2 hold against the new server's totals at the page's sequence (>= 10).
// 4. Saves a screenshot, stops the server with SIGTERM and checks it exits with 0.
//
// Every wait is bounded (waitForFunction with a timeout, and a deadline for the whole test); no
// sleep stands in for synchronisation. Chromium: $AURORA_CHROMIUM or /usr/bin/chromium.
"use strict";

const { spawn } = require("node:child_process");
const readline = require("node:readline");
const puppeteer = require("puppeteer-core");

const [exe, screenshotPath] = process.argv.slice(2);
if (!exe || !screenshotPath) {
  console.error("usage: node browser_test.js <live_dashboard> <screenshot.png>");
  process.exit(2);
}
const chromium = process.env.AURORA_CHROMIUM || "/usr/bin/chromium";
const WAIT_MS = 20000;     // one step of the page
const DEADLINE_MS = 120000;  // the whole test

const servers = new Set();
let browser = null;

function log(...args) { console.log("browser_test:", ...args); }

async function cleanup() {
  for (const s of servers) s.child.kill("SIGKILL");
  if (browser) await browser.close().catch(() => {});
}

async function fail(message) {
  console.error("browser_test: FAILED: " + message);
  await cleanup();
  process.exit(1);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// Rejects after `ms` unless `promise` settled first.
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Starts live_dashboard; resolves when it listens, with the URL, its totals by sequence and a way
// to wait for the totals of one sequence.
function startServer(port, intervalMs) {
  const child = spawn(exe, ["--demo", "--print-totals", "--interval", String(intervalMs), "--port", String(port)],
                      { stdio: ["ignore", "pipe", "inherit"] });
  const server = { child, url: null, totals: new Map(), waiters: new Map(), exited: null };
  servers.add(server);
  server.exited = new Promise((resolve) => child.on("exit", (code, signal) => {
    servers.delete(server);
    resolve({ code, signal });
  }));
  server.totalsAt = (sequence) => {
    if (server.totals.has(sequence)) return Promise.resolve(server.totals.get(sequence));
    return within(WAIT_MS, new Promise((resolve) => server.waiters.set(sequence, resolve)),
                  `the server's totals at sequence ${sequence}`);
  };
  return within(WAIT_MS, new Promise((resolve, reject) => {
    child.on("error", reject);
    server.exited.then(({ code, signal }) => reject(new Error(`live_dashboard exited (${code ?? signal}) before listening`)));
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      const listening = /^listening on (http:\/\/\S+)$/.exec(line);
      if (listening && !server.url) {
        server.url = listening[1];
        resolve(server);
        return;
      }
      if (line.startsWith("totals ")) {
        const t = JSON.parse(line.slice("totals ".length));
        server.totals.set(t.sequence, t);
        const waiter = server.waiters.get(t.sequence);
        if (waiter) { server.waiters.delete(t.sequence); waiter(t); }
      }
    });
  }), "live_dashboard to listen");
}

// What the page shows, read in one go (render() updates it all in one task).
function readPage(page) {
  return page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent;
    const d = document.body.dataset;
    return {
      status: text("status"),
      sequence: Number(text("last-sequence")),
      orders: Number(text("total-count")),
      amount: Number(text("total-amount")),
      rows: document.querySelectorAll("#rows tr").length,
      snapshotSequence: Number(d.snapshotSequence),
      eventsSince: Number(d.eventsSince),
      connections: Number(d.connections || 0),
      resyncs: Number(d.resyncs || 0),
    };
  });
}

// Waits until the page is live at sequence >= `atLeast`, then compares it with the server.
async function checkTotals(page, server, atLeast, phase) {
  await page.waitForFunction(
      (n) => document.getElementById("status").textContent === "live" &&
             Number(document.getElementById("last-sequence").textContent) >= n,
      { timeout: WAIT_MS, polling: "mutation" }, atLeast);
  const shown = await readPage(page);
  const truth = await server.totalsAt(shown.sequence);
  log(phase, "page", JSON.stringify(shown), "database", JSON.stringify(truth));
  check(shown.orders === truth.orders && shown.amount === truth.amount,
        `${phase}: at sequence ${shown.sequence} the page shows ${shown.orders} orders / amount ${shown.amount}, ` +
        `the database has ${truth.orders} / ${truth.amount}`);
  check(shown.rows === shown.orders, `${phase}: the table has ${shown.rows} rows, the total says ${shown.orders}`);
  check(shown.sequence === shown.snapshotSequence + shown.eventsSince,
        `${phase}: events missed or doubled: snapshot at ${shown.snapshotSequence} + ${shown.eventsSince} events ` +
        `!= sequence ${shown.sequence}`);
  return shown;
}

async function main() {
  const first = await startServer(0, 20);
  const port = Number(new URL(first.url).port);
  log("server at", first.url);

  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 900 });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  await page.goto(first.url, { waitUntil: "load", timeout: WAIT_MS });
  await page.waitForFunction(() => document.body.dataset.ready === "1", { timeout: WAIT_MS, polling: "mutation" });
  const before = await checkTotals(page, first, 100, "before restart");
  check(before.connections === 1 && before.resyncs === 0,
        `before restart: ${before.connections} connections and ${before.resyncs} resyncs, expected 1 and 0`);

  first.child.kill("SIGKILL");
  await within(WAIT_MS, first.exited, "the server to exit");
  await page.waitForFunction(() => document.getElementById("status").textContent !== "live",
                             { timeout: WAIT_MS, polling: "mutation" });
  log("server killed; the page shows", JSON.stringify((await readPage(page)).status));

  const second = await startServer(port, 200);
  log("server restarted at", second.url);
  await page.waitForFunction(() => document.body.dataset.connections === "2" && document.body.dataset.resyncs === "1",
                             { timeout: WAIT_MS, polling: "mutation" });
  const after = await checkTotals(page, second, 10, "after restart");
  check(after.connections === 2 && after.resyncs === 1,
        `after restart: ${after.connections} connections and ${after.resyncs} resyncs, expected 2 and 1`);

  await page.screenshot({ path: screenshotPath, fullPage: true });
  log("screenshot:", screenshotPath);
  check(pageErrors.length === 0, "errors on the page: " + pageErrors.join("; "));

  await browser.close();
  browser = null;
  second.child.kill("SIGTERM");
  const exit = await within(WAIT_MS, second.exited, "the server to stop");
  check(exit.code === 0, `live_dashboard exited with ${exit.code ?? exit.signal} after SIGTERM`);
  log("passed");
}

setTimeout(() => fail(`the test did not finish within ${DEADLINE_MS} ms`), DEADLINE_MS).unref();
main().then(() => process.exit(0), (e) => fail(e && e.stack ? e.stack : String(e)));
