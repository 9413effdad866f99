#!/usr/bin/env node
// Figure 3's arithmetic and plot: reads the per-run JSON files `utilisation` wrote and
// writes RESULTS_DIR/utilisation.{md,json,svg}.
//   node analyse-utilisation.js RESULTS_DIR RUN.json...
// The ideal client takes, in each simulated-minute window, min(RPM, parallel * 60 s /
// generation time) and never more than the daily limit minus what it took before.
'use strict';
const fs = require('fs');
const path = require('path');

const PLANS = { free: { rpm: 10, parallel: 1, daily: 100 }, starter: { rpm: 30, parallel: 3, daily: 1000 },
  pro: { rpm: 60, parallel: 10, daily: 10000 } };
const W = 60; // simulated seconds per window
const [outDir, ...files] = process.argv.slice(2);
const runs = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));

function limitsOf(base, overrides) {
  const l = { ...(overrides.plan ? PLANS[overrides.plan] : base) };
  for (const k of ['rpm', 'parallel', 'daily']) if (k in overrides) l[k] = overrides[k] || Infinity;
  return l;
}

function analyse(run) {
  const gen = (run.config.gen_min_seconds + run.config.gen_max_seconds) / 2;
  let limits = limitsOf(PLANS.pro, run.config);
  const ideal = [];
  let used = 0;
  for (let w = 0; w < run.windows; w++) {
    if (run.change && w === run.change_at) limits = limitsOf(limits, { ...run.config, ...run.change, plan: run.change.plan });
    const cap = Math.min(limits.rpm, Math.floor((limits.parallel * W) / gen));
    const take = Math.max(0, Math.min(cap, limits.daily - used));
    ideal.push(take);
    used += take;
  }
  const perWindow = new Array(run.windows).fill(0);
  for (const iso of run.created) {
    const w = Math.floor((Date.parse(iso) - run.origin_sim_ms) / (W * 1000));
    if (w >= 0 && w < run.windows) perWindow[w]++;
  }
  const allowed = ideal.reduce((a, b) => a + b, 0);
  const s = run.stats;
  const tight = run.name === 'parallel' ? 'parallel (10)' : run.name === 'daily' ? 'daily (300)' :
    run.name === 'rpm' ? 'RPM (60/min)' : run.name === 'downgrade' ? 'RPM 60, then free: daily 100 spent' :
      'RPM 60, then free: RPM 10';
  return { name: run.name, client: run.client, tightest: tight, accepted: s.accepted, allowed,
    utilisation: allowed ? s.accepted / allowed : null, rate_limited: s.rate_limited,
    duplicate_charges: s.duplicate_charges, requests: s.requests, max_parallel_seen: s.max_parallel_seen,
    max_window_requests_seen: s.max_window_requests_seen, per_window: perWindow, ideal };
}

const results = runs.map(analyse);
const order = ['rpm', 'parallel', 'daily', 'downgrade', 'downgrade-nodaily'];
const names = order.filter((n) => results.some((r) => r.name === n));
const get = (n, c) => results.find((r) => r.name === n && r.client === c);
const fmt = (r) => (r ? `${r.utilisation.toFixed(3)} (${r.accepted}/${r.allowed})` : '-');

let md = '| case | tightest limit | klingqd utilisation | klingqd 429s | klingqd dup. charges | naive utilisation | naive 429s | naive dup. charges |\n|---|---|---|---|---|---|---|---|\n';
for (const n of names) {
  const k = get(n, 'klingqd');
  const v = get(n, 'naive');
  md += `| ${n} | ${(k || v).tightest} | ${fmt(k)} | ${k ? k.rate_limited.total : '-'} | ${k ? k.duplicate_charges : '-'} | ${fmt(v)} | ${v ? v.rate_limited.total : '-'} | ${v ? v.duplicate_charges : '-'} |\n`;
}
fs.writeFileSync(path.join(outDir, 'utilisation.md'), md);
fs.writeFileSync(path.join(outDir, 'utilisation.json'), JSON.stringify(results, null, 1));
process.stdout.write(md);

// SVG: one panel per case, accepted submits per simulated minute.
const pw = 360; const ph = 200; const m = { l: 44, r: 10, t: 28, b: 34 };
const cols = 2; const rows = Math.ceil(names.length / cols);
const width = cols * pw; const height = rows * ph + 40;
let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">\n`;
svg += `<rect width="100%" height="100%" fill="white"/>\n`;
svg += `<text x="10" y="18" font-size="13" font-weight="bold">klingq limit utilisation: accepted submits per simulated minute (klingq-sim 60x, Pro plan)</text>\n`;
const colors = { klingqd: '#1f77b4', naive: '#ff7f0e', ideal: '#888' };
names.forEach((n, i) => {
  const x0 = (i % cols) * pw; const y0 = 30 + Math.floor(i / cols) * ph;
  const series = [['ideal', (get(n, 'klingqd') || get(n, 'naive')).ideal], ['klingqd', get(n, 'klingqd')?.per_window],
    ['naive', get(n, 'naive')?.per_window]].filter(([, d]) => d);
  const N = series[0][1].length;
  const ymax = Math.max(10, ...series.flatMap(([, d]) => d)) * 1.1;
  const X = (w) => x0 + m.l + (w / N) * (pw - m.l - m.r);
  const Y = (v) => y0 + ph - m.b - (v / ymax) * (ph - m.t - m.b);
  svg += `<text x="${x0 + m.l}" y="${y0 + 16}" font-weight="bold">${n}</text>\n`;
  svg += `<line x1="${X(0)}" y1="${Y(0)}" x2="${X(N)}" y2="${Y(0)}" stroke="black"/>`;
  svg += `<line x1="${X(0)}" y1="${Y(0)}" x2="${X(0)}" y2="${Y(ymax)}" stroke="black"/>\n`;
  for (const v of [0, Math.round(ymax / 2.2), Math.round(ymax / 1.1)]) {
    svg += `<text x="${X(0) - 4}" y="${Y(v) + 4}" text-anchor="end">${v}</text>`;
  }
  for (let w = 0; w <= N; w += 5) svg += `<text x="${X(w)}" y="${Y(0) + 14}" text-anchor="middle">${w}</text>`;
  svg += `<text x="${x0 + pw / 2}" y="${Y(0) + 28}" text-anchor="middle">simulated minute</text>\n`;
  for (const [name, d] of series) {
    const pts = d.map((v, w) => `${X(w).toFixed(1)},${Y(v).toFixed(1)} ${X(w + 1).toFixed(1)},${Y(v).toFixed(1)}`).join(' ');
    const dash = name === 'ideal' ? ' stroke-dasharray="4 3"' : '';
    svg += `<polyline fill="none" stroke="${colors[name]}" stroke-width="${name === 'klingqd' ? 2 : 1.5}"${dash} points="${pts}"/>\n`;
  }
  series.forEach(([name], j) => {
    const lx = x0 + pw - 190 + j * 62;
    svg += `<line x1="${lx}" y1="${y0 + 12}" x2="${lx + 14}" y2="${y0 + 12}" stroke="${colors[name]}" stroke-width="2"/><text x="${lx + 17}" y="${y0 + 16}">${name}</text>`;
  });
  svg += '\n';
});
svg += '</svg>\n';
fs.writeFileSync(path.join(outDir, 'utilisation.svg'), svg);
