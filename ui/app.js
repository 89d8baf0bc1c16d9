// buildtrack status page. No framework and nothing fetched from elsewhere: the page
// reads GET /api/v1/overview once, then follows the `builds` exchange over a WebSocket
// (every build change, routing key <source>.<pipeline>.<state>) held by a worker
// (feed.js) that hands it batches four times a second, so a storm does not freeze it.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'buildtrack.adminToken';
  const PER_BRANCH = 20;
  const SERVICE_MS = 2000;

  const GLYPHS = {
    passed: '✓', failed: '✗', running: '▶', waiting: '…', canceled: '⊘',
    interrupted: '⊘', aborted: '⊘', pending: '○', paused: '○',
  };
  const FINAL = new Set(['passed', 'failed', 'canceled', 'interrupted', 'aborted']);

  /** What the page knows; changed only by apply() and rendered by flush(). */
  const model = {
    rows: new Map(),     // row key → {source, pipeline, branch, builds: [summary], tr}
    order: [],           // row keys in display order
    byKey: new Map(),    // build key → the newest summary heard of
    active: new Map(),   // build key → summary of a build not finished or waiting for statistics
    sources: new Set(),
  };
  const feed = { buffered: [], loaded: false, touchedOpenBuild: false };
  const pending = new Map(); // build key → summary heard, not yet applied
  let flushArmed = false;
  let openBuildKey = ''; // the build whose page is open, if any
  let activeDirty = false; // the active list changed since it was drawn
  /** Read by the browser test: how long the first render took, how the batches went. */
  const stats = window.buildtrackStats = { loadMs: null, messages: 0, flushes: 0, maxFlushMs: 0, rows: 0 };

  // ---------------------------------------------------------------- helpers

  const esc = (s) => String(s ?? '').replace(/[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const rowKeyOf = (s) => `${s.source}\u0000${s.pipeline}\u0000${s.branch}`;
  const time = (iso) => (iso ? new Date(iso).toLocaleString() : '–');
  const word = (w, text) => `<span class="word w-${esc(w)}">${esc(text ?? w.replace(/_/g, ' '))}</span>`;
  const newerThan = (a, b) => !b || (a.updated_at || '') >= (b.updated_at || '');
  /** Newer in a row: by number when both have one, else by update time. */
  const rowOrder = (a, b) => {
    if (a.number != null && b.number != null && a.number !== b.number) return b.number - a.number;
    return (b.updated_at || '').localeCompare(a.updated_at || '');
  };

  function params() {
    const p = new URLSearchParams(location.search);
    return { source: p.get('source') || '', pipeline: p.get('pipeline') || '',
             branch: p.get('branch') || '', build: p.get('build') || '' };
  }

  function linkTo(changes) {
    const p = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) {
      if (v) p.set(k, v); else p.delete(k);
    }
    const q = p.toString();
    return q ? `?${q}` : location.pathname;
  }

  class Unauthorized extends Error {}

  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  async function api(path) {
    const res = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
    if (res.status === 401) throw new Unauthorized();
    if (!res.ok) {
      let message = res.statusText;
      try { message = (await res.json()).error.message; } catch (_) { /* not JSON */ }
      throw new Error(`${path}: ${res.status} ${message}`);
    }
    return res.json();
  }

  function showError(text) {
    const box = $('error');
    box.textContent = text;
    box.hidden = !text;
  }

  /** The admin token is missing or wrong: show no data, ask for it. */
  function askForToken() {
    const refused = sessionStorage.getItem(TOKEN_KEY) !== null;
    $('overview-view').hidden = true;
    $('build-view').hidden = true;
    showError(refused ? 'The admin token was refused: enter the right one to see builds.'
                      : 'This buildtrack needs its admin token to show builds.');
    $('token-error').hidden = !refused;
    $('token-error').textContent = refused ? 'That token was refused.' : '';
    const dialog = $('token-dialog');
    if (!dialog.open) dialog.showModal();
    $('token-input').focus();
  }

  // ---------------------------------------------------------------- the model

  function apply(s) {
    const old = model.byKey.get(s.key);
    if (old && !newerThan(s, old)) return;
    model.byKey.set(s.key, s);
    if (!model.sources.has(s.source)) {
      model.sources.add(s.source);
      renderSources();
    }
    if (old && rowKeyOf(old) !== rowKeyOf(s)) {
      const before = model.rows.get(rowKeyOf(old));
      if (before) {
        before.builds = before.builds.filter((b) => b.key !== s.key);
        before.dirty = true;
      }
    }
    const key = rowKeyOf(s);
    let row = model.rows.get(key);
    if (!row) {
      row = { source: s.source, pipeline: s.pipeline, branch: s.branch, builds: [], tr: null, dirty: true };
      model.rows.set(key, row);
      insertOrdered(key);
    }
    row.builds = row.builds.filter((b) => b.key !== s.key);
    row.builds.push(s);
    row.builds.sort(rowOrder);
    for (const dropped of row.builds.splice(PER_BRANCH)) {
      if (!model.active.has(dropped.key)) model.byKey.delete(dropped.key);
    }
    row.dirty = true;
    if (!FINAL.has(s.state) || (s.waiting_statistics && s.waiting_statistics.length)) {
      model.active.set(s.key, s);
      activeDirty = true;
    } else if (model.active.delete(s.key)) {
      activeDirty = true;
    }
  }

  function insertOrdered(key) {
    let lo = 0, hi = model.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (model.order[mid] < key) lo = mid + 1; else hi = mid;
    }
    model.order.splice(lo, 0, key);
  }

  /** A streak verdict in words: passing, broken, still failing N, fixed. */
  function streakWord({ verdict, failures }) {
    if (verdict === 'passed') return word('passing');
    if (verdict === 'still_failing') return word('still_failing', `still failing ${failures}`);
    return word(verdict);
  }

  /** The streak's word: the verdict on the newest build the streak judged. */
  function streakOf(row) {
    const judged = row.builds.find((b) => b.streak);
    if (!judged) return '<span class="muted" title="no verdict: the branch is not tracked, or nothing finished yet">–</span>';
    return streakWord(judged.streak);
  }

  // ---------------------------------------------------------------- rendering

  /** Where a build's cell links to: the current filters and the build. Computed once per render. */
  let buildHref = '?build=';
  function refreshBuildHref() {
    const p = new URLSearchParams(location.search);
    p.delete('build');
    const q = p.toString();
    buildHref = q ? `?${q}&build=` : '?build=';
  }

  function cellOf(b) {
    const label = `build ${b.number ?? b.id} ${b.state}`;
    return `<a class="cell s-${esc(b.state)}" href="${esc(buildHref + encodeURIComponent(b.key))}" title="${esc(label)}"`
      + ` aria-label="${esc(label)}" data-key="${esc(b.key)}">${GLYPHS[b.state] || '?'}</a>`;
  }

  function rowHtml(row) {
    const latest = row.builds[0];
    return `<td>${esc(row.source)}</td><td>${esc(row.pipeline)}</td><td>${esc(row.branch || '–')}</td>`
      + `<td class="streak">${streakOf(row)}</td>`
      + `<td><span class="latest">${latest ? `#${esc(latest.number ?? latest.id)} ${word(latest.state)}` : ''}</span></td>`
      + `<td><div class="cells">${row.builds.map(cellOf).join('')}</div></td>`;
  }

  function visible(row, f) {
    return (!f.source || row.source === f.source)
      && (!f.pipeline || row.pipeline.includes(f.pipeline))
      && (!f.branch || row.branch.includes(f.branch));
  }

  function renderRow(row, f) {
    row.tr.innerHTML = rowHtml(row);
    row.tr.hidden = !visible(row, f);
    row.dirty = false;
  }

  // Only rows on screen (or nearly) are redrawn as changes come; a row that changed
  // while off screen is redrawn when it scrolls into view. A storm then costs the
  // page a few dozen rows per batch, not a thousand.
  const rowOfTr = new WeakMap();
  const observer = new IntersectionObserver((entries) => {
    const f = params();
    for (const entry of entries) {
      const row = rowOfTr.get(entry.target);
      if (!row) continue;
      row.onscreen = entry.isIntersecting;
      if (row.onscreen && row.dirty) renderRow(row, f);
    }
  }, { rootMargin: '300px 0px' });

  function track(row, tr) {
    row.tr = tr;
    row.onscreen = false;
    rowOfTr.set(tr, row);
    observer.observe(tr);
  }

  /** Puts every row in the table once, in order; afterwards rows change in place. */
  function renderAllRows() {
    const tbody = $('pipelines').tBodies[0];
    const f = params();
    const html = [];
    for (const key of model.order) {
      const row = model.rows.get(key);
      html.push(`<tr${visible(row, f) ? '' : ' hidden'}>${rowHtml(row)}</tr>`);
      row.dirty = false;
    }
    observer.disconnect();
    tbody.innerHTML = html.join('');
    model.order.forEach((key, i) => track(model.rows.get(key), tbody.rows[i]));
  }

  function renderDirtyRows() {
    const tbody = $('pipelines').tBodies[0];
    const f = params();
    model.order.forEach((key, i) => {
      const row = model.rows.get(key);
      if (!row.tr) {
        const tr = document.createElement('tr');
        const next = model.order.slice(i + 1).map((k) => model.rows.get(k).tr).find((t) => t);
        tbody.insertBefore(tr, next || null);
        track(row, tr);
        renderRow(row, f);
      } else if (row.dirty && row.onscreen) {
        renderRow(row, f);
      }
    });
  }

  function waitingFor(s) {
    const parts = [];
    for (const t of s.waiting_targets || []) {
      parts.push(`message for target <b>${esc(t.job)}</b> since ${esc(time(t.since))}`
        + (t.deadline ? `, until ${esc(time(t.deadline))}` : ''));
    }
    for (const w of s.waiting_statistics || []) {
      const what = w.missing.length ? w.missing.map(esc).join(', ') : 'statistics';
      parts.push(`<b>${esc(w.sink)}</b> waits for ${what}` + (w.until ? ` until ${esc(time(w.until))}` : ''));
    }
    return parts.join('<br>') || '–';
  }

  function renderActive() {
    activeDirty = false;
    const list = [...model.active.values()].sort((a, b) => (b.updated_at || '').localeCompare(a.updated_at || ''));
    const f = params();
    const shown = list.filter((s) => visible(s, f));
    $('active-count').textContent = `(${shown.length})`;
    $('active-empty').hidden = shown.length > 0;
    $('active').hidden = shown.length === 0;
    $('active').tBodies[0].innerHTML = shown.slice(0, 100).map((s) =>
      `<tr data-key="${esc(s.key)}"><td><a href="${esc(buildHref + encodeURIComponent(s.key))}">${esc(s.key)}</a></td>`
      + `<td>${word(s.state)}</td><td class="wrap">${waitingFor(s)}</td><td>${esc(time(s.updated_at))}</td></tr>`).join('');
  }

  function renderCounts() {
    const f = params();
    let shown = 0;
    for (const row of model.rows.values()) if (visible(row, f)) shown++;
    $('branch-count').textContent = `(${shown} of ${model.rows.size} branches)`;
    stats.rows = model.rows.size;
  }

  function renderSources() {
    const select = $('f-source');
    const current = params().source;
    const names = [...model.sources].sort();
    if (current && !model.sources.has(current)) names.push(current);
    select.innerHTML = '<option value="">all</option>'
      + names.map((s) => `<option${s === current ? ' selected' : ''}>${esc(s)}</option>`).join('');
  }

  // ---------------------------------------------------------------- the feed

  /** Draws the next frame with what the feed brought. */
  function schedule() {
    if (flushArmed) return;
    flushArmed = true;
    requestAnimationFrame(flush);
  }

  /** Applies what the feed brought since the last flush and redraws what changed. */
  function flush() {
    flushArmed = false;
    const started = performance.now();
    for (const s of pending.values()) apply(s);
    pending.clear();
    refreshBuildHref();
    renderDirtyRows();
    if (activeDirty) renderActive();
    renderCounts();
    if (openBuildKey && feed.touchedOpenBuild) {
      feed.touchedOpenBuild = false;
      loadBuild(openBuildKey);
    }
    stats.flushes++;
    stats.maxFlushMs = Math.max(stats.maxFlushMs, performance.now() - started);
  }

  function heard(s) {
    if (!feed.loaded) { feed.buffered.push(s); return; }
    const waiting = pending.get(s.key);
    if (!waiting || newerThan(s, waiting)) pending.set(s.key, s);
    if (s.key === openBuildKey) feed.touchedOpenBuild = true;
  }

  function setFeedState(text) {
    const el = $('feed-state');
    el.textContent = text;
    el.dataset.state = text;
  }

  // The WebSocket lives in a worker (ui/feed.js), which parses every frame and sends
  // a batch four times a second: the page's thread stays free in a storm.
  const worker = new Worker('/ui/feed.js');
  worker.onmessage = (ev) => {
    const m = ev.data;
    if (m.type === 'state') return setFeedState(m.state);
    if (m.type === 'gap') return reload();
    stats.messages += m.frames;
    for (const s of m.summaries) heard(s);
    if (feed.loaded) schedule();
  };

  function openFeed() {
    const url = new URL('/api/v1/exchanges/builds/subscribe', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('bind', '#');
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) url.searchParams.set('access_token', token);
    setFeedState('connecting');
    worker.postMessage({ type: 'open', url: url.toString() });
  }

  // ---------------------------------------------------------------- loading

  async function loadOverview() {
    const started = performance.now();
    const view = await api(`/api/v1/overview?builds=${PER_BRANCH}`);
    model.rows.clear(); model.order = []; model.byKey.clear(); model.active.clear();
    for (const g of view.branches) {
      const key = rowKeyOf(g);
      model.rows.set(key, { source: g.source, pipeline: g.pipeline, branch: g.branch, builds: g.builds, tr: null });
      model.order.push(key);
      model.sources.add(g.source);
      for (const b of g.builds) model.byKey.set(b.key, b);
    }
    model.order.sort();
    for (const s of view.active) {
      model.active.set(s.key, s);
      if (!model.byKey.has(s.key)) model.byKey.set(s.key, s);
    }
    // What the feed brought while the overview was read: only what is newer applies.
    feed.loaded = true;
    for (const s of feed.buffered.splice(0)) apply(s);
    renderSources();
    refreshBuildHref();
    renderAllRows();
    renderActive();
    renderCounts();
    stats.loadMs = performance.now();
    stats.overviewMs = stats.loadMs - started;
    document.body.dataset.ready = '1';
  }

  async function reload() {
    feed.loaded = false;
    try {
      await loadOverview();
      showError('');
    } catch (e) {
      if (e instanceof Unauthorized) askForToken(); else showError(String(e.message || e));
    }
  }

  // ---------------------------------------------------------------- one build

  function buildPath(key) {
    const first = key.indexOf('/'), last = key.lastIndexOf('/');
    const parts = [key.slice(0, first), key.slice(first + 1, last), key.slice(last + 1)];
    return `/api/v1/builds/${parts.map(encodeURIComponent).join('/')}`;
  }

  function table(headers, rows) {
    if (!rows.length) return '<p class="muted">none</p>';
    return `<div class="scroll"><table class="grid"><thead><tr>${headers.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead>`
      + `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table></div>`;
  }

  function jobsHtml(b) {
    return b.jobs.map((j) => {
      // What decides the job: failed (an attempt or its target's message), fixed, else its state.
      const verdict = j.failed ? word('failed') : j.fixed ? word('fixed') : word(j.state);
      const attempts = table(['Attempt', 'State', 'Exit', 'Started', 'Finished'], j.attempts.map((a) => [
        esc(a.attempt ?? ''), word(a.state) + (a.soft_failed ? ' (soft)' : ''), esc(a.exit_status ?? '–'),
        esc(time(a.started_at)), esc(time(a.finished_at))]));
      let target = '';
      if (j.target) {
        const t = j.target;
        target = `<p>Target: ${word(t.state)} since ${esc(time(t.waiting_since))}`
          + (t.deadline ? `, deadline ${esc(time(t.deadline))}` : '') + (t.message ? `, message #${esc(t.message)}` : '') + '</p>'
          + `<h4>Unit results</h4>${table(['Name', 'Result', 'Duration', 'Namespace', 'Path'], t.unit.map((u) => [
            esc(u.name), word(u.result === 'pass' ? 'passed' : u.result === 'fail' ? 'failed' : u.result, u.result),
            esc(u.duration ?? '–'), esc(u.namespace), esc(u.path)]))}`
          + `<h4>Lint results</h4>${table(['Name', 'Code', 'Severity', 'Path', 'Line', 'Description'], t.lint.map((l) => [
            esc(l.name), esc(l.code), esc(l.severity), esc(l.path), esc(l.line ?? ''), esc(l.description)]))}`;
      }
      return `<section class="job" data-job="${esc(j.group)}"><h3>${esc(j.name || j.group)} ${verdict}</h3>${attempts}${target}</section>`;
    }).join('');
  }

  function buildHtml(b, notices) {
    const streak = b.streak ? streakWord(b.streak) : '–';
    const facts = [
      ['State', `${word(b.state)}${b.source_state ? ` <span class="muted">(${esc(b.source_state)})</span>` : ''}`],
      ['Streak', streak], ['Number', esc(b.number ?? '–')], ['Branch', esc(b.branch || '–')],
      ['Commit', `${esc((b.commit || '').slice(0, 12) || '–')} ${esc((b.message || '').split('\n')[0])}`],
      ['Author', esc(b.author.name || b.author.login || b.author.email || '–')],
      ['Link', b.url ? `<a href="${esc(b.url)}" rel="noopener">${esc(b.url)}</a>` : '–'],
      ['Parent', b.parent ? `<a href="${esc(linkTo({ build: b.parent }))}">${esc(b.parent)}</a>` : '–'],
      ['Started', esc(time(b.started_at))], ['Finished', esc(time(b.finished_at))],
      ['Revision / generation', `${esc(b.revision)} / ${esc(b.generation)}`],
    ];
    return `<h2 id="build-title">${esc(b.key)}</h2>`
      + `<dl class="facts">${facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>`
      + `<h3>Failed jobs</h3><p id="failed-jobs">${b.failed_jobs.length ? b.failed_jobs.map((n) => word('failed', n)).join(', ') : '<span class="muted">none</span>'}</p>`
      + `<h3>Fixed jobs</h3><p id="fixed-jobs">${b.fixed_jobs.length ? b.fixed_jobs.map((n) => word('fixed', n)).join(', ') : '<span class="muted">none</span>'}</p>`
      + `<h3>Jobs</h3><div id="jobs">${jobsHtml(b) || '<p class="muted">none</p>'}</div>`
      + `<h3>Messages</h3>${table(['#', 'Target', 'Type', 'Status', 'Received', 'Note'], b.messages.map((m) => [
        esc(m.number), esc(m.target), esc(m.type), word(m.status === 'consumed' ? 'passed' : m.status === 'ignored' ? 'canceled' : 'waiting', m.status),
        esc(time(m.received_at)), esc(m.note || '')]))}`
      + `<h3>Statistics</h3>${table(['Name', 'Value'], Object.entries(b.statistics).map(([k, v]) => [esc(k), esc(v)]))}`
      + `<h3>Notifications</h3><div id="notifications">${table(['Sink', 'Kind', 'Job', 'Revision', 'State', 'Failed attempts', 'Since', 'Next attempt', 'Detail'],
        notices.map((n) => [esc(n.sink), esc(n.kind), esc(n.job || ''), esc(n.revision), word(n.state),
          esc(n.attempts), esc(time(n.at)), esc(n.next_attempt ? time(n.next_attempt) : ''), esc(n.detail || '')]))}</div>`;
  }

  async function loadBuild(key) {
    try {
      const [b, notices] = await Promise.all([api(buildPath(key)), api(`${buildPath(key)}/notifications`)]);
      if (key !== openBuildKey) return;
      $('build').innerHTML = buildHtml(b, notices);
      document.title = `${b.key} ${b.state} – buildtrack`;
      showError('');
    } catch (e) {
      if (e instanceof Unauthorized) return askForToken();
      $('build').innerHTML = `<h2>${esc(key)}</h2>`;
      showError(String(e.message || e));
    }
  }

  // ---------------------------------------------------------------- views

  function showView() {
    const f = params();
    openBuildKey = f.build;
    $('overview-view').hidden = !!f.build;
    $('build-view').hidden = !f.build;
    $('back').href = linkTo({ build: '' });
    $('home').href = linkTo({ build: '' });
    if (f.build) {
      $('build').innerHTML = `<h2>${esc(f.build)}</h2><p class="muted">loading…</p>`;
      loadBuild(f.build);
    } else {
      document.title = 'buildtrack';
    }
  }

  function readFilters() {
    const f = params();
    $('f-source').value = f.source;
    $('f-pipeline').value = f.pipeline;
    $('f-branch').value = f.branch;
  }

  function filtersChanged() {
    const url = linkTo({ source: $('f-source').value, pipeline: $('f-pipeline').value.trim(), branch: $('f-branch').value.trim() });
    history.replaceState(null, '', url);
    const f = params();
    for (const row of model.rows.values()) if (row.tr) row.tr.hidden = !visible(row, f);
    refreshBuildHref();
    renderActive();
    renderCounts();
    $('home').href = linkTo({ build: '' });
  }

  // Links inside the page change the view without a reload: the feed stays open.
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest('a');
    if (!a || a.origin !== location.origin || ev.ctrlKey || ev.metaKey || ev.shiftKey || a.target) return;
    if (a.pathname !== '/' ) return;
    ev.preventDefault();
    history.pushState(null, '', a.href);
    readFilters();
    showView();
  });
  window.addEventListener('popstate', () => { readFilters(); showView(); });

  // ---------------------------------------------------------------- the service

  const service = { previous: null, rates: [] };

  function parseMetrics(text) {
    const samples = [];
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
      samples.push({ name: m[1], labels, value: Number(m[3]) });
    }
    return samples;
  }

  function sum(samples, name, where = () => true) {
    return samples.filter((s) => s.name === name && where(s.labels)).reduce((a, s) => a + s.value, 0);
  }

  /** Latency buckets summed over sources: upper bound → cumulative count. */
  function buckets(samples) {
    const by = new Map();
    for (const s of samples) {
      if (s.name !== 'buildtrack_ack_latency_seconds_bucket') continue;
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      by.set(le, (by.get(le) || 0) + s.value);
    }
    return [...by.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** As Prometheus' histogram_quantile: linear within the bucket that holds it. */
  function quantile(q, bs) {
    const total = bs.length ? bs[bs.length - 1][1] : 0;
    if (!total) return null;
    const rank = q * total;
    let lower = 0, below = 0;
    for (const [le, count] of bs) {
      if (count >= rank) {
        if (le === Infinity) return lower;
        return lower + (le - lower) * ((rank - below) / Math.max(count - below, 1));
      }
      lower = le; below = count;
    }
    return lower;
  }

  const ms = (seconds) => (seconds == null ? '–' : `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)} ms`);

  async function pollService() {
    try {
      const [metrics, ready] = await Promise.all([
        fetch('/metrics', { cache: 'no-store' }).then((r) => r.text()),
        fetch('/readyz', { cache: 'no-store' }).then(async (r) => ({ ok: r.ok, status: (await r.json()).status })),
      ]);
      const samples = parseMetrics(metrics);
      const now = performance.now();
      const accepted = sum(samples, 'buildtrack_events_total', (l) => l.outcome === 'accepted');
      const bs = buckets(samples);
      const prev = service.previous;
      if (prev) {
        const rate = Math.max(0, (accepted - prev.accepted) / ((now - prev.at) / 1000));
        service.rates.push(rate);
        if (service.rates.length > 60) service.rates.shift();
        $('svc-rate').textContent = `${rate.toFixed(rate < 10 ? 1 : 0)} events/s`;
        // Latency over the last interval when anything came, else since the start.
        const delta = bs.map(([le, c], i) => [le, c - ((prev.buckets[i] || [le, 0])[1])]);
        const recent = delta.length && delta[delta.length - 1][1] > 0 ? delta : bs;
        $('svc-ack').textContent = `${ms(quantile(0.5, recent))} / ${ms(quantile(0.99, recent))}`;
      }
      service.previous = { accepted, buckets: bs, at: now };
      $('svc-outbox').textContent = String(sum(samples, 'buildtrack_notification_outbox'));
      const dead = sum(samples, 'buildtrack_notification_dead_letters_total');
      $('svc-dead').innerHTML = dead ? word('failed', String(dead)) : '0';
      $('svc-store').innerHTML = ready.ok ? word('passed', 'ready') : word('failed', ready.status);
      drawSparkline();
    } catch (e) {
      $('svc-store').innerHTML = word('failed', 'unreachable');
    }
  }

  function drawSparkline() {
    const rates = service.rates;
    const max = Math.max(1, ...rates);
    const step = 120 / 59;
    const points = rates.map((r, i) => `${(120 - (rates.length - 1 - i) * step).toFixed(1)},${(23 - (r / max) * 22).toFixed(1)}`);
    document.querySelector('#svc-spark polyline').setAttribute('points', points.join(' '));
    $('svc-spark').setAttribute('aria-label', `Ingest rate over the last ${rates.length * SERVICE_MS / 1000} s, up to ${max.toFixed(0)} events/s`);
  }

  // ---------------------------------------------------------------- start

  $('filters').addEventListener('input', filtersChanged);
  $('filters').addEventListener('submit', (ev) => ev.preventDefault());
  $('token-form').addEventListener('submit', () => {
    sessionStorage.setItem(TOKEN_KEY, $('token-input').value);
    $('token-input').value = '';
    showError('');
    start();
  });

  function start() {
    readFilters();
    showView();
    feed.buffered = [];
    openFeed();
    reload();
  }

  start();
  pollService();
  setInterval(pollService, SERVICE_MS);
  setInterval(() => { if (openBuildKey && !document.hidden) loadBuild(openBuildKey); }, 5000);
})();
