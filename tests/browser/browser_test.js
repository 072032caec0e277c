// Aurora's browser test: the live dashboard (examples/live_dashboard) in headless Chromium.
//
//   node browser_test.js <live_dashboard executable> <screenshot.png>
//
// 1. Starts `live_dashboard --data F --demo --print-totals --interval 20 --port 0` on a new
//    SQLite file F (a DurableDatabase); its first stdout line gives the address, then it prints
//    the database's totals at start and after every write
//    (`totals {"sequence":S,"orders":N,"amount":A}`, computed from db.snapshot("orders")).
// 2. Opens the page, waits until it is live (snapshot applied) and has seen sequence >= 100, then
//    asserts, at the sequence S the page shows: its order count and amount equal the database's
//    totals at S, its table has that many rows, and S == snapshot sequence + events applied since,
//    with no event skipped as a duplicate and none out of order (the demo writes only "orders",
//    so every sequence is an order event: nothing missed, nothing twice).
// 3. Kills the server (SIGKILL) and waits until the page shows it is no longer live; the page's
//    last sequence is now P. While the page is disconnected, `live_dashboard --data F --write 25`
//    writes 25 more changes to F and exits (so they certainly happened while no server ran).
//    Starts the server again on F and on the same port: its first totals are those of the
//    writer's last sequence W > P (the sequence continued across both restarts). Asserts, once
//    the page is live past W: it reconnected once and resumed with start.after == P (no resync,
//    no new snapshot), the events it applied since its one snapshot are exactly P+1 .. its
//    sequence (none twice, none skipped: so also every change written while it was away), and
//    its totals equal the database's at its sequence.
// 4. Kills the server again and starts one without --data: a new in-memory database. The page's
//    resume names F's database, so the server refuses it (database_mismatch) and the page starts
//    over from a snapshot exactly once, then matches the new database as in step 2.
// 5. Saves a screenshot, stops the server with SIGTERM and checks it exits with 0.
//
// Every wait is bounded (waitForFunction with a timeout, and a deadline for the whole test); no
// sleep stands in for synchronisation. Chromium: $AURORA_CHROMIUM or /usr/bin/chromium.
"use strict";

const { spawn } = require("node:child_process");
const readline = require("node:readline");
const puppeteer = require("puppeteer-core");

const fs = require("node:fs");
const path = require("node:path");

const [exe, screenshotPath] = process.argv.slice(2);
if (!exe || !screenshotPath) {
  console.error("usage: node browser_test.js <live_dashboard> <screenshot.png>");
  process.exit(2);
}
const chromium = process.env.AURORA_CHROMIUM || "/usr/bin/chromium";
const WAIT_MS = 20000;     // one step of the page
const DEADLINE_MS = 150000;  // the whole test
const WRITTEN_WHILE_DOWN = 25;  // changes written to the file while no server runs

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

// Starts live_dashboard (on the file `data`, or in memory when it is null); resolves when it
// listens and has printed its initial totals (`initial`), with the URL, its totals by sequence and
// a way to wait for the totals of one sequence.
function startServer(port, intervalMs, data) {
  const args = ["--demo", "--print-totals", "--interval", String(intervalMs), "--port", String(port)];
  if (data) args.push("--data", data);
  const child = spawn(exe, args, { stdio: ["ignore", "pipe", "inherit"] });
  const server = { child, url: null, totals: new Map(), initial: null, waiters: new Map(), exited: null };
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
        return;
      }
      if (line.startsWith("totals ")) {
        const t = JSON.parse(line.slice("totals ".length));
        if (!server.initial) {  // printed right after listening, before any demo write
          server.initial = t;
          resolve(server);
        }
        server.totals.set(t.sequence, t);
        const waiter = server.waiters.get(t.sequence);
        if (waiter) { server.waiters.delete(t.sequence); waiter(t); }
      }
    });
  }), "live_dashboard to listen");
}

// Runs `live_dashboard --data <data> --write <n> --print-totals` to its end; resolves with the
// totals after its last write.
function writeWhileDown(data, n) {
  const child = spawn(exe, ["--data", data, "--write", String(n), "--print-totals"], { stdio: ["ignore", "pipe", "inherit"] });
  let last = null;
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    if (line.startsWith("totals ")) last = JSON.parse(line.slice("totals ".length));
  });
  return within(WAIT_MS, new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code === 0 && last) resolve(last);
      else reject(new Error(`live_dashboard --write exited with ${code ?? signal}, last totals ${JSON.stringify(last)}`));
    });
  }), "live_dashboard --write");
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
      resumes: Number(d.resumes || 0),
      resumedAfter: Number(d.resumedAfter || 0),
      duplicates: Number(d.duplicates || 0),
      jumps: Number(d.jumps || 0),
      database: d.database || "",
      lastError: d.lastError || "",
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
  check(shown.duplicates === 0 && shown.jumps === 0,
        `${phase}: ${shown.duplicates} events arrived twice and ${shown.jumps} out of sequence`);
  return shown;
}

// Kills `server` and waits until the page shows it is no longer live; returns what the page shows.
async function killServer(page, server) {
  server.child.kill("SIGKILL");
  await within(WAIT_MS, server.exited, "the server to exit");
  await page.waitForFunction(() => document.getElementById("status").textContent !== "live",
                             { timeout: WAIT_MS, polling: "mutation" });
  const shown = await readPage(page);
  log("server killed; the page shows", JSON.stringify(shown));
  return shown;
}

async function main() {
  const data = path.join(path.dirname(path.resolve(screenshotPath)), "orders.db");
  for (const suffix of ["", "-wal", "-shm", "-journal"]) fs.rmSync(data + suffix, { force: true });
  const first = await startServer(0, 20, data);
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
  check(before.connections === 1 && before.resyncs === 0 && before.resumes === 0,
        `before restart: ${before.connections} connections, ${before.resyncs} resyncs and ${before.resumes} ` +
        "resumes, expected 1, 0 and 0");
  check(before.database !== "", "before restart: the snapshot named no database");

  // The same file: the page resumes where it stopped and gets what was written while it was away.
  const down = await killServer(page, first);
  const written = await writeWhileDown(data, WRITTEN_WHILE_DOWN);
  log("written while the page was disconnected:", JSON.stringify(written));
  check(written.sequence >= down.sequence + WRITTEN_WHILE_DOWN,
        `the writer ended at sequence ${written.sequence}, expected >= ${down.sequence} + ${WRITTEN_WHILE_DOWN}`);
  const second = await startServer(port, 20, data);
  log("server restarted on the same file at", second.url, "with", JSON.stringify(second.initial));
  check(second.initial && second.initial.sequence === written.sequence,
        `the restarted server starts at ${JSON.stringify(second.initial)}, expected sequence ${written.sequence}`);
  const resumed = await checkTotals(page, second, written.sequence + 1, "after a restart on the same file");
  check(resumed.connections === 2 && resumed.resumes === 1 && resumed.resyncs === 0,
        `after a restart on the same file: ${resumed.connections} connections, ${resumed.resumes} resumes and ` +
        `${resumed.resyncs} resyncs, expected 2, 1 and 0`);
  check(resumed.resumedAfter === down.sequence,
        `the page resumed with start.after ${resumed.resumedAfter}, its last sequence was ${down.sequence}`);
  check(resumed.snapshotSequence === before.snapshotSequence && resumed.database === before.database,
        `the page took another snapshot (at ${resumed.snapshotSequence}, database ${resumed.database}) instead of ` +
        `resuming (snapshot at ${before.snapshotSequence}, database ${before.database})`);

  // Another database (in memory): the page's resume is refused and it starts over, once.
  await killServer(page, second);
  const third = await startServer(port, 200, null);
  log("server restarted in memory at", third.url);
  await page.waitForFunction(() => document.body.dataset.connections === "3" && document.body.dataset.resyncs === "1",
                             { timeout: WAIT_MS, polling: "mutation" });
  const after = await checkTotals(page, third, 1, "after a restart on another database");
  check(after.connections === 3 && after.resyncs === 1 && after.lastError === "database_mismatch",
        `after a restart on another database: ${after.connections} connections, ${after.resyncs} resyncs and ` +
        `last error ${after.lastError}, expected 3, 1 and database_mismatch`);
  check(after.database !== before.database, "the in-memory server gave the durable database's id");

  await page.screenshot({ path: screenshotPath, fullPage: true });
  log("screenshot:", screenshotPath);
  check(pageErrors.length === 0, "errors on the page: " + pageErrors.join("; "));

  await browser.close();
  browser = null;
  third.child.kill("SIGTERM");
  const exit = await within(WAIT_MS, third.exited, "the server to stop");
  check(exit.code === 0, `live_dashboard exited with ${exit.code ?? exit.signal} after SIGTERM`);
  log("passed");
}

setTimeout(() => fail(`the test did not finish within ${DEADLINE_MS} ms`), DEADLINE_MS).unref();
main().then(() => process.exit(0), (e) => fail(e && e.stack ? e.stack : String(e)));
