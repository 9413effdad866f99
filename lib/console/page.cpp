// The console's page, compiled in; see page.hpp. Plain DOM code, no framework and no
// external resource, so the page works on a host with no Internet and under a strict
// Content-Security-Policy (script and style only from this origin, nothing inline).
#include "console/page.hpp"

namespace klingq::console::page {

const char* const html = R"KQ(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>klingq console</title>
<link rel="stylesheet" href="/console.css">
<script src="/console.js" defer></script>
</head>
<body>
<header>
  <h1><a href="#/">klingq</a></h1>
  <nav><a href="#/" id="nav-overview">Overview</a> <a href="#/jobs" id="nav-jobs">Jobs</a></nav>
  <div id="session">
    <span id="who" data-testid="who"></span>
    <form id="login" hidden>
      <input type="password" name="token" id="login-token" placeholder="token" autocomplete="current-password">
      <button type="submit" id="login-button">Log in</button>
    </form>
    <button id="logout" hidden>Log out</button>
  </div>
</header>
<div id="message" role="status" data-testid="message"></div>
<main id="view"><p class="muted">Loading…</p></main>
<footer><span id="updated" data-testid="updated"></span></footer>
</body>
</html>
)KQ";

const char* const css = R"KQ(
:root { --fg:#1d2329; --muted:#6a737d; --line:#d8dee4; --bg:#f6f8fa; --card:#fff; --ok:#1a7f37; --warn:#9a6700; --bad:#cf222e; --accent:#0969da; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; align-items:center; gap:24px; padding:10px 20px; background:#24292f; color:#fff; }
header h1 { margin:0; font-size:18px; } header a { color:#fff; text-decoration:none; }
nav a { margin-right:14px; opacity:.85; } nav a.active { opacity:1; font-weight:600; border-bottom:2px solid #fff; }
#session { margin-left:auto; display:flex; gap:8px; align-items:center; }
#session input { padding:4px 6px; }
main { padding:16px 20px; max-width:1300px; }
footer { padding:6px 20px; color:var(--muted); font-size:12px; }
#message { padding:0 20px; min-height:0; }
#message.show { margin:10px 20px 0; padding:8px 12px; border-radius:6px; background:#fff8c5; border:1px solid #d4a72c; }
#message.error { background:#ffebe9; border-color:#ff8182; }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(240px, 1fr)); gap:12px; margin-bottom:16px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card h3 { margin:0 0 6px; font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
.big { font-size:22px; font-weight:600; }
.muted { color:var(--muted); }
.banner { padding:10px 14px; border-radius:8px; margin-bottom:14px; border:1px solid var(--line); background:var(--card); display:flex; gap:12px; align-items:center; flex-wrap:wrap; }
.banner.held { border-color:#d4a72c; background:#fff8c5; }
.banner.stopped { border-color:#ff8182; background:#ffebe9; }
table { border-collapse:collapse; width:100%; background:var(--card); border:1px solid var(--line); border-radius:8px; overflow:hidden; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f0f3f6; font-weight:600; font-size:12px; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
section { margin-bottom:20px; } section h2 { font-size:16px; margin:0 0 8px; }
.bar { height:8px; background:#eaeef2; border-radius:4px; overflow:hidden; min-width:120px; }
.bar > span { display:block; height:100%; background:var(--ok); }
.meter { height:6px; background:#eaeef2; border-radius:3px; overflow:hidden; margin:6px 0; }
.meter > span { display:block; height:100%; background:var(--accent); }
.state { display:inline-block; padding:0 6px; border-radius:10px; font-size:12px; background:#eaeef2; }
.state.completed { background:#dafbe1; color:var(--ok); } .state.failed { background:#ffebe9; color:var(--bad); }
.state.queued { background:#ddf4ff; color:var(--accent); } .state.cancelled { background:#eaeef2; color:var(--muted); }
.state.submitted, .state.dispatching { background:#fff8c5; color:var(--warn); }
button { padding:4px 10px; border:1px solid var(--line); border-radius:6px; background:#f6f8fa; cursor:pointer; font:inherit; }
button.danger { color:var(--bad); } button:disabled { opacity:.5; cursor:not-allowed; }
form.filters { display:flex; gap:8px; margin-bottom:10px; flex-wrap:wrap; } form.filters input, form.filters select { padding:4px 6px; }
dl.fields { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px; }
dl.fields dt { color:var(--muted); } dl.fields dd { margin:0; word-break:break-all; }
ol.timeline { list-style:none; padding:0; margin:0; background:var(--card); border:1px solid var(--line); border-radius:8px; }
ol.timeline li { padding:6px 12px; border-bottom:1px solid var(--line); } ol.timeline li .at { color:var(--muted); margin-right:10px; font-variant-numeric:tabular-nums; }
svg.spark { width:100%; height:48px; } svg.spark polyline { fill:none; stroke:var(--accent); stroke-width:1.5; }
pre { white-space:pre-wrap; margin:0; font-size:12px; }
)KQ";

const char* const js = R"KQ(
'use strict';
(function () {
  var session = { role: 'none', csrf: null, reads_need_token: false };
  var clockOffset = 0;  // server now - browser now, from the last overview
  var timer = null;
  var view = document.getElementById('view');

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      // Through the CSSOM: the Content-Security-Policy refuses style attributes.
      else if (k === 'style') e.style.cssText = attrs[k];
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  function fmt(n) { return n == null ? '–' : Number(n).toLocaleString('en-US'); }
  function iso(ms) { return ms == null ? '–' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC'; }
  function span(seconds) {
    if (seconds == null) return '–';
    seconds = Math.max(0, Math.round(seconds));
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    if (d) return d + 'd ' + h + 'h'; if (h) return h + 'h ' + m + 'm'; if (m) return m + 'm ' + s + 's'; return s + 's';
  }
  function countdown(ms) { return ms == null ? '–' : 'in ' + span((ms - (Date.now() + clockOffset)) / 1000); }
  function say(text, isError) {
    var m = document.getElementById('message');
    m.textContent = text || ''; m.className = text ? 'show' + (isError ? ' error' : '') : '';
  }
  function canAct() { return session.role === 'operator'; }

  function api(method, path, body) {
    var headers = { 'Accept': 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
    return fetch(path, { method: method, headers: headers, credentials: 'same-origin',
                         body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (r.status === 401) { showLogin(true); }
          if (!r.ok) { var e = new Error(j.error || ('HTTP ' + r.status)); e.status = r.status; throw e; }
          return j;
        });
      });
  }

  function showLogin(needed) {
    document.getElementById('login').hidden = session.role !== 'none' ? true : false;
    document.getElementById('logout').hidden = session.role === 'none';
    document.getElementById('who').textContent = session.role === 'none' ? (needed ? 'log in to see the queue' : 'not logged in (read only)') : session.who + ' (' + session.role + ')';
  }
  function loadSession() {
    return api('GET', '/api/session').then(function (s) { session = s; showLogin(s.reads_need_token); });
  }
  document.getElementById('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var input = document.getElementById('login-token');
    api('POST', '/login', { token: input.value }).then(function () {
      input.value = ''; say(''); return loadSession();
    }).then(route).catch(function (e) { say('login refused: ' + e.message, true); });
  });
  document.getElementById('logout').addEventListener('click', function () {
    api('POST', '/logout', {}).then(loadSession).then(route);
  });

  function act(path, body, done) {
    return api('POST', path, body || {}).then(function (r) { say(r.action + ' done by ' + r.by); if (done) done(r); refresh(); })
      .catch(function (e) { say(e.message, true); });
  }
  function actionButton(label, testid, handler, danger) {
    var b = el('button', { 'data-testid': testid, class: danger ? 'danger' : '', text: label, onclick: handler });
    if (!canAct()) { b.disabled = true; b.title = 'an operator token is needed'; }
    return b;
  }

  // ---- overview ----
  function meter(used, limit) {
    var pct = limit ? Math.min(100, 100 * used / limit) : 0;
    return el('div', { class: 'meter' }, [el('span', { style: 'width:' + pct + '%' })]);
  }
  function card(title, testid, rows) { return el('div', { class: 'card', 'data-testid': testid }, [el('h3', { text: title })].concat(rows)); }
  function sparkline(points) {
    var max = 1; points.forEach(function (p) { max = Math.max(max, p.completed, p.submitted); });
    var w = 300, h = 48, step = w / Math.max(1, points.length - 1);
    var line = points.map(function (p, i) { return (i * step).toFixed(1) + ',' + (h - 2 - (h - 4) * p.completed / max).toFixed(1); }).join(' ');
    var svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('class', 'spark'); svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h); svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('data-testid', 'sparkline');
    var pl = document.createElementNS('http://www.w3.org/2000/svg', 'polyline'); pl.setAttribute('points', line); svg.appendChild(pl);
    return svg;
  }
  function renderOverview(o) {
    clockOffset = o.now - Date.now();
    var out = [];
    var hold = o.hold || { by: 'none' };
    var bannerClass = 'banner' + (o.halted_reason ? ' stopped' : (o.paused || (hold.by !== 'none' && hold.by !== 'no_account')) ? ' held' : '');
    var holdText = o.halted_reason ? 'HALTED by the API: ' + o.halted_reason
      : o.paused ? 'Dispatch paused' + (o.paused_reason ? ': ' + o.paused_reason : '')
      : hold.by === 'none' ? 'Dispatching: nothing holds it'
      : hold.by === 'no_account' ? 'No account row yet: klingqd has not started'
      : 'Held by ' + hold.by + (hold.until ? ' until ' + iso(hold.until) + ' (' + countdown(hold.until) + ')'
                               : hold.by === 'parallel' ? ' until a job in flight completes'
                               : hold.by === 'credit' || hold.by === 'no_balance' ? ' until the balance allows more' : '');
    var reason = el('input', { id: 'pause-reason', placeholder: 'reason', 'data-testid': 'pause-reason' });
    if (!canAct()) reason.disabled = true;
    out.push(el('div', { class: bannerClass, 'data-testid': 'hold' }, [
      el('strong', { 'data-testid': 'hold-text', text: holdText }),
      o.paused ? actionButton('Resume', 'resume', function () { act('/api/resume', {}); })
               : el('span', {}, [reason, ' ', actionButton('Pause', 'pause', function () { act('/api/pause', { reason: reason.value || null }); }, true)])
    ]));
    var l = o.limits;
    if (l) {
      out.push(el('div', { class: 'grid' }, [
        card('Requests / ' + l.rpm.window_seconds + ' s', 'limit-rpm', [
          el('div', { class: 'big', text: l.rpm.limit ? fmt(l.rpm.remaining) + ' left of ' + fmt(l.rpm.limit) : 'unlimited' }),
          l.rpm.limit && l.rpm.remaining != null ? meter(l.rpm.limit - l.rpm.remaining, l.rpm.limit) : null,
          el('div', { class: 'muted', text: l.rpm.remaining == null ? 'no window reported yet' : 'headroom ' + fmt(l.rpm.remaining) + ', resets ' + countdown(l.rpm.reset_at) }),
          l.rpm.paused_until ? el('div', { text: '429: paused until ' + iso(l.rpm.paused_until) }) : null]),
        card('Parallel', 'limit-parallel', [
          el('div', { class: 'big', text: fmt(l.parallel.in_flight) + ' / ' + (l.parallel.limit ? fmt(l.parallel.limit) : '∞') }),
          meter(l.parallel.in_flight, l.parallel.limit),
          el('div', { class: 'muted', text: 'headroom ' + fmt(l.parallel.headroom) })]),
        card('Today', 'limit-daily', [
          el('div', { class: 'big', text: fmt(l.daily.used) + ' / ' + (l.daily.limit ? fmt(l.daily.limit) : '∞') }),
          meter(l.daily.used, l.daily.limit),
          el('div', { class: 'muted', text: 'headroom ' + fmt(l.daily.headroom) + ', day begins again ' + countdown(l.daily.reset_at) + ' (' + iso(l.daily.reset_at) + ')' })]),
        card('Credits', 'credits', [
          el('div', { class: 'big', 'data-testid': 'balance', text: o.credits.balance == null ? 'unknown' : fmt(o.credits.balance) }),
          el('div', { class: 'muted', text: 'reserve ' + fmt(o.credits.reserve) + ', burn ' + fmt(o.credits.burn_per_hour) + '/h' }),
          el('div', { class: 'muted', text: 'runway ' + (o.credits.runway_seconds == null ? '–' : span(o.credits.runway_seconds)) })])
      ]));
    }
    var lh = o.last_hour;
    var classes = Object.keys(lh.failures_by_class).map(function (k) { return k + ' ' + lh.failures_by_class[k]; }).join(', ') || 'none';
    out.push(el('div', { class: 'grid' }, [
      card('Last hour', 'last-hour', [
        el('div', { text: 'submitted ' + fmt(lh.submitted) + ', completed ' + fmt(lh.completed) + ', failed ' + fmt(lh.failed) }),
        el('div', { text: '429s ' + fmt(lh.rate_limited) + ', 402s ' + fmt(lh.no_credit) + ', bad signatures ' + fmt(lh.bad_signatures) }),
        el('div', { class: 'muted', text: 'failures by class: ' + classes })]),
      card('Completed per minute (1 h)', 'throughput', [sparkline(o.throughput)]),
      card('Jobs', 'states', [el('div', { text: ['queued', 'dispatching', 'submitted', 'completed', 'failed', 'cancelled'].map(function (s) { return s + ' ' + fmt(o.states[s]); }).join(' · ') })])
    ]));
    out.push(el('section', {}, [el('h2', { text: 'Instances (' + o.instances.length + ')' }),
      el('table', { 'data-testid': 'instances' }, [el('tr', {}, ['id', 'host', 'version', 'hold', 'heartbeat'].map(function (h) { return el('th', { text: h }); }))]
        .concat(o.instances.map(function (i) {
          return el('tr', {}, [el('td', { text: i.id }), el('td', { text: i.host + ' (pid ' + i.pid + ')' }), el('td', { text: i.version }),
            el('td', { text: i.hold }), el('td', { text: span((Date.now() + clockOffset - i.heartbeat_at) / 1000) + ' ago' })]);
        })))]));
    // Counts per batch and the last hour are read less often at a million jobs.
    var age = o.slow_figures ? (o.now - o.slow_figures.read_at) / 1000 : 0;
    out.push(el('section', {}, [el('h2', { text: 'Batches' + (age > 3 ? ' (counts as of ' + span(age) + ' ago)' : '') }),
      el('table', { 'data-testid': 'batches' }, [el('tr', {}, ['batch', 'queued', 'in flight', 'completed', 'failed', 'cancelled', 'progress', 'credits', 'ETA', ''].map(function (h) { return el('th', { text: h }); }))]
        .concat(o.batches.map(function (b) {
          var st = b.states, label = b.batch;
          // ':unlabelled' names the jobs without a batch; a label's ':' is always %3A.
          var base = '/api/batches/' + (label == null ? ':unlabelled' : encodeURIComponent(label));
          var actions = el('td', {}, [
            b.paused ? actionButton('Resume', 'resume-batch', function () { act(base + '/resume', {}); })
                     : actionButton('Pause', 'pause-batch', function () { act(base + '/pause', {}); }), ' ',
            actionButton('Retry failed', 'retry-failed', function () { act(base + '/retry-failed', {}); }), ' ',
            actionButton('Cancel', 'cancel-batch', function () { if (confirm('Cancel the queued jobs of ' + b.label + '?')) act(base + '/cancel', {}); }, true)]);
          return el('tr', { 'data-batch': b.label }, [
            el('td', {}, [el('a', { href: '#/jobs?batch=' + encodeURIComponent(label || ''), text: b.label }),
              b.paused ? el('span', { class: 'state cancelled', 'data-testid': 'batch-paused', text: ' paused' + (b.paused_reason ? ': ' + b.paused_reason : '') }) : null]),
            el('td', { class: 'num', text: fmt(st.queued) }), el('td', { class: 'num', text: fmt(st.dispatching + st.submitted) }),
            el('td', { class: 'num', text: fmt(st.completed) }), el('td', { class: 'num', text: fmt(st.failed) }), el('td', { class: 'num', text: fmt(st.cancelled) }),
            el('td', {}, [el('div', { class: 'bar', title: Math.round(100 * b.progress) + '%' }, [el('span', { style: 'width:' + (100 * b.progress).toFixed(1) + '%' })]), el('span', { class: 'muted', text: Math.round(100 * b.progress) + '% of ' + fmt(b.total) })]),
            el('td', { class: 'num', text: fmt(b.credits_spent) + (b.budget_left == null ? '' : ' (budget left ' + fmt(b.budget_left) + ')') }),
            el('td', { 'data-testid': 'eta', text: b.eta ? b.eta.text : '–' }), actions]);
        })))]));
    return out;
  }

  // ---- jobs ----
  function parseQuery(q) {
    var out = {}; (q || '').split('&').forEach(function (p) { if (!p) return; var kv = p.split('='); out[decodeURIComponent(kv[0])] = decodeURIComponent((kv[1] || '').replace(/\+/g, ' ')); });
    return out;
  }
  function query(params) { return Object.keys(params).filter(function (k) { return params[k]; }).map(function (k) { return encodeURIComponent(k) + '=' + encodeURIComponent(params[k]); }).join('&'); }
  function renderJobs(params, r) {
    var state = el('select', { name: 'state', 'data-testid': 'filter-state' }, [''].concat(['queued', 'dispatching', 'submitted', 'completed', 'failed', 'cancelled']).map(function (s) {
      var o = el('option', { value: s, text: s || 'any state' }); if (s === (params.state || '')) o.selected = true; return o; }));
    var batch = el('input', { name: 'batch', placeholder: 'batch', value: params.batch || '', 'data-testid': 'filter-batch' });
    var q = el('input', { name: 'q', placeholder: 'prompt text or remote id', value: params.q || '', 'data-testid': 'filter-q' });
    var form = el('form', { class: 'filters', onsubmit: function (ev) { ev.preventDefault(); location.hash = '#/jobs?' + query({ state: state.value, batch: batch.value, q: q.value }); } },
      [state, batch, q, el('button', { type: 'submit', text: 'Filter' })]);
    var rows = r.jobs.map(function (j) {
      return el('tr', { 'data-job': j.id }, [el('td', {}, [el('a', { href: '#/job/' + j.id, text: '#' + j.id })]),
        el('td', {}, [el('span', { class: 'state ' + j.state, text: j.state })]), el('td', { text: j.batch || '' }),
        el('td', { class: 'num', text: j.attempts }), el('td', { class: 'num', text: fmt(j.credit_cost) }), el('td', { text: j.prompt }),
        el('td', { text: j.error_class ? j.error_class + ': ' + (j.error_message || '') : (j.wait_reason || '') }), el('td', { text: iso(j.created_at) })]);
    });
    var more = [];
    if (params.after) more.push(el('a', { href: '#/jobs?' + query({ state: params.state, batch: params.batch, q: params.q }), text: '« newest' }), ' ');
    if (r.next_after) more.push(el('a', { 'data-testid': 'older', href: '#/jobs?' + query({ state: params.state, batch: params.batch, q: params.q, after: r.next_after }), text: r.search ? 'search older »' : 'older »' }));
    // A text search reads a bounded range of ids per request: say which, and go on from there.
    if (r.search) more.unshift(el('span', { class: 'muted', 'data-testid': 'search-range',
      text: 'searched jobs #' + r.search.to_id + '–#' + r.search.from_id + (r.search.complete ? ', down to the oldest' : '; older jobs not searched yet') + ' ' }));
    return [form, el('table', { 'data-testid': 'jobs' }, [el('tr', {}, ['id', 'state', 'batch', 'attempts', 'credits', 'prompt', 'error / waiting', 'created'].map(function (h) { return el('th', { text: h }); }))].concat(rows)),
      el('p', {}, more.length ? more : [el('span', { class: 'muted', text: r.jobs.length ? 'end of list' : 'no jobs match' })])];
  }

  // ---- one job ----
  function renderJob(r) {
    var j = r.job;
    var fields = [['state', el('span', { class: 'state ' + j.state, 'data-testid': 'job-state', text: j.state })], ['prompt', j.prompt], ['batch', j.batch || '–'],
      ['mode / duration', j.mode + ', ' + j.duration + ' s, ' + j.aspect_ratio + (j.version ? ', v' + j.version : '')], ['priority', String(j.priority)],
      ['attempts', j.attempts + ' of ' + j.max_attempts], ['remote id', j.remote_id || '–'], ['cost', j.credit_cost == null ? '–' : fmt(j.credit_cost) + ' credits'],
      ['video', j.url ? el('a', { href: j.url, rel: 'noreferrer', text: j.url }) : '–'],
      ['file', j.output_path ? j.output_path + ' (' + fmt(j.output_bytes) + ' bytes)' : (j.output_error ? JSON.stringify(j.output_error) : '–')],
      ['waiting', j.wait_reason || '–'], ['lease', j.lease_owner ? j.lease_owner + ' until ' + iso(j.lease_expires_at) : '–'],
      ['created', iso(j.created_at)], ['submitted', iso(j.submitted_at)], ['completed', iso(j.completed_at)],
      ['last error', j.last_error ? el('pre', { text: JSON.stringify(j.last_error.last || j.last_error, null, 1) }) : '–']];
    var dl = el('dl', { class: 'fields' }, []);
    fields.forEach(function (f) { dl.appendChild(el('dt', { text: f[0] })); dl.appendChild(el('dd', {}, [f[1]])); });
    var items = r.timeline.map(function (e) {
      var text = e.kind === 'created' ? 'created (queued)'
        : e.kind === 'state' ? (e.from || '∅') + ' → ' + e.to + (e.instance ? ' on ' + e.instance : '') + (e.detail && e.detail.error ? ' — ' + (e.detail.error.class || '') + ': ' + (e.detail.error.message || '') : '') + (e.detail && e.detail.wait_reason ? ' (' + e.detail.wait_reason + ')' : '')
        : e.action + ' by ' + e.actor + (e.reason ? ': ' + e.reason : '');
      return el('li', { 'data-kind': e.kind }, [el('span', { class: 'at', text: iso(e.at) }), text]);
    });
    var reason = el('input', { placeholder: 'reason', 'data-testid': 'job-reason' });
    return [el('h2', { text: 'Job #' + j.id }),
      el('p', {}, [reason, ' ', actionButton('Retry', 'retry', function () { act('/api/jobs/' + j.id + '/retry', { reason: reason.value || null }); }), ' ',
        actionButton('Cancel', 'cancel', function () { act('/api/jobs/' + j.id + '/cancel', { reason: reason.value || null }); }, true)]),
      dl, el('h2', { text: 'Timeline' }), el('ol', { class: 'timeline', 'data-testid': 'timeline' }, items)];
  }

  // ---- routing and live refresh ----
  var current = null;
  function show(nodes, force) {
    var keep = document.activeElement && view.contains(document.activeElement) && document.activeElement.tagName === 'INPUT' ? document.activeElement : null;
    if (keep && !force) return;  // do not wipe what the operator is typing: the next tick will do

    while (view.firstChild) view.removeChild(view.firstChild);
    nodes.forEach(function (n) { if (n) view.appendChild(n); });
    document.getElementById('updated').textContent = 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
  }
  function refresh() {
    if (!current) return;
    var c = current;
    var p = c.kind === 'overview' ? api('GET', '/api/overview').then(renderOverview)
      : c.kind === 'job' ? api('GET', '/api/jobs/' + encodeURIComponent(c.id)).then(renderJob)
      : api('GET', '/api/jobs?' + query(c.params)).then(function (r) { return renderJobs(c.params, r); });
    return p.then(function (nodes) { if (c === current) show(nodes, c.fresh); c.fresh = false; })
      .catch(function (e) { if (c === current && e.status !== 401) say(e.message, true); if (e.status === 401) show([el('p', { class: 'muted', text: 'Log in with a viewer or operator token to see the queue.' })]); });
  }
  function route() {
    var h = location.hash.replace(/^#/, '') || '/';
    var qi = h.indexOf('?'), path = qi < 0 ? h : h.slice(0, qi), params = parseQuery(qi < 0 ? '' : h.slice(qi + 1));
    var m = path.match(/^\/job\/(\d+)$/);
    current = m ? { kind: 'job', id: m[1] } : path === '/jobs' ? { kind: 'jobs', params: params } : { kind: 'overview' };
    document.getElementById('nav-overview').className = current.kind === 'overview' ? 'active' : '';
    document.getElementById('nav-jobs').className = current.kind !== 'overview' ? 'active' : '';
    say('');
    current.fresh = true;
    refresh();
  }
  window.addEventListener('hashchange', route);
  loadSession().catch(function () {}).then(function () {
    route();
    // Live: the overview and a job's page every second (the server answers the overview
    // from a one-second cache, so many open pages cost the database the same); the job
    // list every 2 s, only its first page.
    var tick = 0;
    timer = setInterval(function () {
      tick++;
      if (!current || document.hidden) return;
      if (current.kind === 'jobs' && (current.params.after || tick % 2)) return;
      refresh();
    }, 1000);
  });
})();
)KQ";

}  // namespace klingq::console::page
