#!/usr/bin/env node
// Figure 2 for klingqd: with the queue idle, INSERT one job every --gap-ms (default 25 ms,
// above klingqd's p99, so each insert finds the queue empty), N times, then read
// created_at -> claim (the job_events 'dispatching' row) and created_at -> submitted_at
// (set when the API accepted it) from the database.
//   node klingq-latency.js --db URL --jobs 1000 [--gap-ms 25]
'use strict';
const { Client } = require('pg');
const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
(async () => {
  const db = new Client({ connectionString: args.db });
  await db.connect();
  const n = Number(args.jobs || 1000); const gap = Number(args['gap-ms'] || 25);
  const first = (await db.query("INSERT INTO klingq.jobs (prompt, batch) VALUES ('latency prompt 0', 'latency') RETURNING id")).rows[0].id;
  for (let i = 1; i < n; i++) {
    await new Promise((r) => setTimeout(r, gap));
    await db.query("INSERT INTO klingq.jobs (prompt, batch) VALUES ($1, 'latency')", [`latency prompt ${i}`]);
  }
  for (let t = 0; t < 200; t++) { // wait for the last ones
    const { rows } = await db.query("SELECT count(*)::int AS n FROM klingq.jobs WHERE batch = 'latency' AND state IN ('queued','dispatching')");
    if (rows[0].n === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const { rows } = await db.query(`
    WITH j AS (
      SELECT j.id, extract(epoch FROM j.submitted_at - j.created_at) * 1000 AS submit_ms,
             extract(epoch FROM (SELECT min(e.at) FROM klingq.job_events e
                                 WHERE e.job_id = j.id AND e.to_state = 'dispatching') - j.created_at) * 1000 AS claim_ms
      FROM klingq.jobs j WHERE j.batch = 'latency' AND j.id >= $1)
    SELECT count(submit_ms)::int AS jobs,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY claim_ms) AS claim_p50_ms,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY claim_ms) AS claim_p99_ms,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY submit_ms) AS submit_p50_ms,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY submit_ms) AS submit_p99_ms,
           max(submit_ms) AS submit_max_ms
    FROM j`, [first]);
  process.stdout.write(JSON.stringify({ peer: 'klingqd', ...rows[0] }) + '\n');
  await db.end();
})().catch((e) => { console.error(e); process.exit(1); });
