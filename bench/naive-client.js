#!/usr/bin/env node
// The naive client of figure 3, in the style many users write first: a loop that sends
// one generate request every 60/RPM seconds (the plan's RPM it signed up for), sleeps a
// fixed cooldown after a 429 and then retries that job, never reads X-RateLimit-* or
// Retry-After and caps nothing (requests are fired without waiting for the previous one).
// Each job has its own Idempotency-Key, reused on its retries.
//
//   node naive-client.js --addr HOST:PORT --key KEY --rpm 60 --time-scale 60 \
//        --cooldown 10 --duration-ms 30000 --out FILE.json
// --cooldown is in simulated seconds, like the RPM (per simulated minute).
'use strict';
const http = require('http');
const crypto = require('crypto');
const fs = require('fs');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const [host, port] = args.addr.split(':');
const scale = Number(args['time-scale'] || 1);
const intervalMs = 60000 / Number(args.rpm) / scale;
const cooldownMs = (Number(args.cooldown || 10) * 1000) / scale;
const durationMs = Number(args['duration-ms']);

const agent = new http.Agent({ keepAlive: true }); // no maxSockets: no parallel cap
const query = 'mutation Generate($input: GenerateInput!) { generate(input: $input) ' +
  '{ id status type provider url metadata creditCost createdAt } }';
const counts = { sent: 0, accepted: 0, rate_limited: 0, other: 0, errors: 0 };
const accepts = []; // real ms of each accepted reply
let next = 0; // next job number
const retries = []; // jobs whose last attempt got a 429
let cooldownUntil = 0;
const started = Date.now();

function submit(job) {
  const body = JSON.stringify({
    query, operationName: 'Generate',
    variables: { input: { type: 'VIDEO', provider: 'kling', input: { text: `naive prompt ${job.n}` },
      options: { duration: 5, aspectRatio: '16:9', quality: 'standard' } } },
  });
  counts.sent++;
  const req = http.request({ host, port, method: 'POST', path: '/graphql', agent, headers: {
    'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
    Authorization: `Bearer ${args.key}`, 'Idempotency-Key': job.key,
  } }, (res) => {
    res.resume();
    res.on('end', () => {
      if (res.statusCode === 200) { counts.accepted++; accepts.push(Date.now()); }
      else if (res.statusCode === 429) { counts.rate_limited++; retries.push(job); cooldownUntil = Date.now() + cooldownMs; }
      else { counts.other++; retries.push(job); }
    });
  });
  req.on('error', () => { counts.errors++; retries.push(job); });
  req.end(body);
}

// A fixed-rate loop: tick k fires at started + k * interval, unless cooling down.
let tick = 0;
function loop() {
  const now = Date.now();
  if (now - started >= durationMs) return finish();
  if (now >= cooldownUntil) {
    const job = retries.shift() || { n: next, key: crypto.randomUUID(), _: next++ };
    submit(job);
  }
  tick++;
  setTimeout(loop, Math.max(0, started + tick * intervalMs - Date.now()));
}

function finish() {
  setTimeout(() => { // let replies in flight land
    const out = { ...counts, started_ms: started, accepts_ms: accepts };
    if (args.out) fs.writeFileSync(args.out, JSON.stringify(out));
    process.stdout.write(JSON.stringify(counts) + '\n');
    agent.destroy();
    process.exit(0);
  }, 200);
}
loop();
