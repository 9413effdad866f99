#!/usr/bin/env node
// The Postgres job-queue peers of figures 1 and 2, doing per job what klingqd does: one
// POST of the generate mutation to klingq-sim (keep-alive, Authorization: Bearer,
// Idempotency-Key), then mark the job done.
//
//   node peers.js queue   graphile|pgboss --db URL --jobs N
//   node peers.js drain   graphile|graphile-batched|pgboss|pgboss-batched --db URL --sim ADDR
//                         --key KEY --concurrency C --jobs N
//        starts the worker on the queued jobs and prints {"jobs", "seconds", "jobs_per_s"}:
//        the time from starting the worker until no job is left undone (polled every 100 ms),
//        and "client_cpu_s", this process's CPU time in that span.
//   node peers.js klingq-drained klingqd --db URL
//        returns when klingq.jobs has no row queued or dispatching (polled every 50 ms on
//        one connection, the way the peers' own drain is watched).
//   node peers.js latency graphile --db URL --sim ADDR --key KEY --jobs N
//        graphile-worker's latencyTest method: with the queue idle, add one job, wait until
//        its task has run, repeat; prints p50/p99 of add_job -> task start and -> POST done.
'use strict';
const http = require('http');
const { Pool } = require('pg');

const [cmd, peer, ...rest] = process.argv.slice(2);
const args = {};
for (let i = 0; i < rest.length; i += 2) args[rest[i].replace(/^--/, '')] = rest[i + 1];
const concurrency = Number(args.concurrency || 64);
const TASK = 'generate';

const query = 'mutation Generate($input: GenerateInput!) { generate(input: $input) ' +
  '{ id status type provider url metadata creditCost createdAt } }';
let agent;
function post(prompt, key) {
  if (!agent) agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const [host, port] = args.sim.split(':');
  const body = JSON.stringify({ query, operationName: 'Generate', variables: { input: {
    type: 'VIDEO', provider: 'kling', input: { text: prompt },
    options: { duration: 5, aspectRatio: '16:9', quality: 'standard' } } } });
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method: 'POST', path: '/graphql', agent, headers: {
      'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
      Authorization: `Bearer ${args.key}`, 'Idempotency-Key': key } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
        const reply = JSON.parse(Buffer.concat(chunks).toString());
        if (!reply.data) return reject(new Error(JSON.stringify(reply.errors)));
        resolve(reply.data);
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const REMAINING = {
  graphile: 'SELECT count(*)::int AS n FROM graphile_worker._private_jobs',
  pgboss: "SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'generate' AND state < 'completed'",
};

// Until no job is left, or --max-seconds have passed (then the rate is over the jobs done
// so far: pg-boss 10 with 64 workers does about 16 jobs/s at 100,000 queued, because each
// fetch sorts the whole queue, and would take hours).
async function waitDrained(pool, sql, started) {
  const limit = Number(args['max-seconds'] || Infinity);
  for (;;) {
    const { rows } = await pool.query(sql);
    const seconds = (Date.now() - started) / 1000;
    if (rows[0].n === 0 || seconds >= limit) return { seconds, remaining: rows[0].n };
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function queue() {
  const n = Number(args.jobs);
  if (peer === 'graphile') {
    const { runMigrations } = require('graphile-worker');
    await runMigrations({ connectionString: args.db });
    const pool = new Pool({ connectionString: args.db });
    // add_jobs: the bulk form of add_job, 10,000 specs a call.
    for (let i = 0; i < n; i += 10000) {
      const m = Math.min(10000, n - i);
      await pool.query(`SELECT graphile_worker.add_jobs(array(
        SELECT (${"'" + TASK + "'"}, json_build_object('prompt', 'bench prompt ' || g, 'n', g),
                NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec
        FROM generate_series($1::int, $2::int) g))`, [i + 1, i + m]);
    }
    await pool.end();
  } else {
    const PgBoss = require('pg-boss');
    const boss = new PgBoss({ connectionString: args.db, supervise: false, schedule: false });
    await boss.start();
    await boss.createQueue(TASK);
    for (let i = 0; i < n; i += 5000) {
      const jobs = [];
      for (let g = i + 1; g <= Math.min(n, i + 5000); g++) jobs.push({ name: TASK, data: { prompt: `bench prompt ${g}`, n: g } });
      await boss.insert(jobs);
    }
    await boss.stop({ graceful: false, wait: true });
  }
}

async function drain() {
  const monitor = new Pool({ connectionString: args.db, max: 1 });
  const cpuAtStart = process.cpuUsage();
  const started = Date.now();
  let drained;
  if (peer.startsWith('graphile')) {
    const { run } = require('graphile-worker');
    const batched = peer === 'graphile-batched';
    const runner = await run({
      connectionString: args.db,
      concurrency,
      maxPoolSize: concurrency, // below concurrency graphile-worker warns of non-optimal performance
      noHandleSignals: true,
      pollInterval: 1000,
      logger: new (require('graphile-worker').Logger)(() => () => {}),
      preset: batched ? { worker: { localQueue: { size: 200 }, completeJobBatchDelay: 0 } } : undefined,
      taskList: { [TASK]: async (payload, helpers) => { await post(payload.prompt, `graphile-${helpers.job.id}`); } },
    });
    drained = await waitDrained(monitor, REMAINING.graphile, started);
    await runner.stop();
  } else {
    const PgBoss = require('pg-boss');
    const batched = peer === 'pgboss-batched';
    // pg-boss 10 runs one fetch loop per work() call; concurrency = loops x batchSize.
    const batchSize = batched ? 16 : 1;
    const boss = new PgBoss({ connectionString: args.db, max: batched ? concurrency / batchSize + 2 : concurrency,
      supervise: false, schedule: false, migrate: false });
    boss.on('error', (e) => console.error('pg-boss:', e.message));
    await boss.start();
    for (let w = 0; w < concurrency / batchSize; w++) {
      await boss.work(TASK, { batchSize, pollingIntervalSeconds: 0.5 }, async (jobs) => {
        await Promise.all(jobs.map((job) => post(job.data.prompt, `pgboss-${job.id}`)));
      });
    }
    drained = await waitDrained(monitor, REMAINING.pgboss, started);
    await boss.stop({ graceful: false, wait: false });
  }
  await monitor.end();
  const jobs = Number(args.jobs) - drained.remaining;
  const { seconds } = drained;
  const cpu = process.cpuUsage(cpuAtStart);  // this process's user + system time during the drain
  process.stdout.write(JSON.stringify({ peer, jobs, seconds, jobs_per_s: jobs / seconds, stopped_early: drained.remaining > 0,
    client_cpu_s: (cpu.user + cpu.system) / 1e6 }) + '\n');
  process.exit(0);
}

async function latency() {
  // graphile-worker's perfTest/latencyTest.js: add one job with the queue idle, await the
  // task, repeat. Timestamps are taken in this process around add_job.
  const { run, quickAddJob } = require('graphile-worker');
  const n = Number(args.jobs);
  const pool = new Pool({ connectionString: args.db, max: 2 });
  pool.on('error', (e) => console.error('pool:', e.message));
  let pending;
  const runner = await run({
    pgPool: pool, concurrency: 1, noHandleSignals: true, pollInterval: 2000,
    logger: new (require('graphile-worker').Logger)(() => () => {}),
    taskList: { [TASK]: async (payload, helpers) => {
      const start = process.hrtime.bigint();
      await post(payload.prompt, `latency-${helpers.job.id}`);
      pending.resolve({ start, posted: process.hrtime.bigint() });
    } },
  });
  const toStart = []; const toPosted = [];
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < n; i++) {
    const done = new Promise((resolve) => { pending = { resolve }; });
    const t0 = process.hrtime.bigint();
    await quickAddJob({ pgPool: pool }, TASK, { prompt: `latency prompt ${i}` });
    const { start, posted } = await done;
    toStart.push(Number(start - t0) / 1e6);
    toPosted.push(Number(posted - t0) / 1e6);
    await new Promise((r) => setTimeout(r, 10));
  }
  await runner.stop();
  const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
  process.stdout.write(JSON.stringify({ peer: 'graphile', jobs: n,
    start_p50_ms: pct(toStart, 0.5), start_p99_ms: pct(toStart, 0.99),
    posted_p50_ms: pct(toPosted, 0.5), posted_p99_ms: pct(toPosted, 0.99) }) + '\n');
  process.exit(0);
}

// One connection, autocommit: neither a process per poll nor a snapshot held across the
// run (either loaded or slowed the database being measured).
async function klingqDrained() {
  const pool = new Pool({ connectionString: args.db, max: 1 });
  for (;;) {
    const { rows } = await pool.query(`SELECT EXISTS (SELECT 1 FROM klingq.jobs WHERE state = 'queued')
                                           OR EXISTS (SELECT 1 FROM klingq.jobs WHERE state = 'dispatching') AS undone`);
    if (!rows[0].undone) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await pool.end();
}

({ queue, drain, latency, 'klingq-drained': klingqDrained })[cmd]().catch((e) => { console.error(e); process.exit(1); });
