// The influencer dashboard: plain browser JavaScript over the read API, charts by uPlot.
/* global uPlot */
(() => {
  'use strict';

  const RANGES = { hour: 3_600_000, day: 86_400_000, week: 7 * 86_400_000 };
  const REFRESH_MS = 15_000;
  const $ = (id) => document.getElementById(id);
  const num = new Intl.NumberFormat('en-US');
  const dec = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
  const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
  const fmt = (v, f = num) => (v === null || v === undefined || Number.isNaN(v) ? '–' : f.format(v));
  const signed = (v) => (v === null || v === undefined ? '–' : `${v > 0 ? '+' : ''}${num.format(v)}`);
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');

  const state = { pk: null, range: 'hour', sort: 'followers', loading: 0 };
  const charts = new Map();

  async function api(path) {
    const res = await fetch(path, { headers: { Accept: 'application/json' } });
    let body = null;
    try {
      body = await res.json();
    } catch {
      /* empty or not JSON */
    }
    if (!res.ok) {
      const err = new Error((body && body.error) || `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    if (/^\d+$/.test(p.get('pk') || '')) state.pk = Number(p.get('pk'));
    if (RANGES[p.get('range')]) state.range = p.get('range');
  }

  function writeHash() {
    const next = `#pk=${state.pk ?? ''}&range=${state.range}`;
    if (location.hash !== next) history.replaceState(null, '', next);
  }

  function showMessage(text, kind = 'info') {
    const m = $('message');
    m.textContent = text;
    m.className = `message ${kind}`;
    m.hidden = !text;
  }

  function pressed(selector, attr, value) {
    for (const b of document.querySelectorAll(selector))
      b.setAttribute('aria-pressed', String(b.dataset[attr] === value));
  }

  // ---- one influencer ----------------------------------------------------------------------

  async function loadInfluencer() {
    if (state.pk === null) return;
    const pk = state.pk;
    const range = state.range;
    const to = Date.now();
    const from = to - RANGES[range];
    writeHash();
    pressed('[data-range]', 'range', range);
    $('pk-input').value = String(pk);
    const seq = ++state.loading;
    document.body.dataset.state = 'loading';
    try {
      const [summary, timeline] = await Promise.all([
        api(`/api/v1/influencers/${encodeURIComponent(pk)}`),
        api(`/api/v1/influencers/${encodeURIComponent(pk)}/timeline?from=${from}&to=${to}`),
      ]);
      if (seq !== state.loading) return; // a newer search has started
      showMessage('');
      $('details').classList.remove('empty');
      renderSummary(summary);
      renderCharts(summary, timeline, from, to);
      document.body.dataset.state = 'ready';
    } catch (err) {
      if (seq !== state.loading) return;
      showMessage(
        err.status === 404 ? `No data yet for pk ${pk}: no node has stored a sample for it.` : err.message,
        err.status === 404 ? 'info' : 'error',
      );
      $('details').classList.add('empty');
      document.body.dataset.state = 'error';
    }
  }

  function renderSummary(s) {
    $('username').textContent = s.username || `pk ${s.pk}`;
    $('pk-label').textContent = `pk ${s.pk}`;
    $('followers').textContent = fmt(s.followerCount);
    $('following').textContent = fmt(s.followingCount);
    $('ratio').textContent = fmt(s.followerRatio, dec);
    $('rank').textContent = s.rank === null ? '–' : `#${num.format(s.rank)}`;
    $('average').textContent = fmt(s.averageFollowers, dec);
    const growth = $('growth');
    growth.textContent = signed(s.growth);
    growth.className = s.growth > 0 ? 'up' : s.growth < 0 ? 'down' : '';
    const flag = $('flag');
    flag.hidden = false;
    if (s.suspicious === null) {
      flag.textContent = 'not checked yet';
      flag.className = 'badge neutral';
      flag.title = 'The daily is_suspicious check has not run for this influencer yet';
    } else {
      flag.textContent = s.suspicious ? 'suspicious' : 'not suspicious';
      flag.className = `badge ${s.suspicious ? 'bad' : 'good'}`;
      flag.title = `Checked ${when(s.suspiciousAt)}`;
    }
    $('meta').textContent =
      `Last updated ${when(s.lastUpdated)} · ${num.format(s.samples)} samples · min ${fmt(s.minFollowers)} · max ${fmt(s.maxFollowers)}`;
  }

  function renderCharts(summary, timeline, from, to) {
    const points = timeline.points;
    const xs = points.map((p) => Date.parse(p.at) / 1000);
    const hourly = timeline.resolution === 'bucket';
    const span = timeline.bucketMs === 3600000 ? 'hour' : `${Math.round(timeline.bucketMs / 60000)} minutes`;
    $('resolution').textContent = hourly
      ? `(${timeline.bucketMs === 3600000 ? 'hourly' : `every ${span}`}: last, min and max of each ${span})`
      : '(one point per interval)';
    const followers = [xs, points.map((p) => p.followerCount), points.map(() => summary.averageFollowers)];
    const series = [
      {},
      {
        label: hourly ? `Followers (last of ${span})` : 'Followers',
        stroke: '#2563eb',
        width: 2,
        points: { show: points.length < 60 },
        value: (u, v) => fmt(v),
      },
      {
        label: 'Average',
        stroke: '#d97706',
        width: 1.5,
        dash: [6, 4],
        points: { show: false },
        value: (u, v) => fmt(v, dec),
      },
    ];
    if (hourly) {
      followers.push(
        points.map((p) => p.minFollowers),
        points.map((p) => p.maxFollowers),
      );
      series.push(
        { label: 'Min', stroke: '#93c5fd', width: 1, points: { show: false }, value: (u, v) => fmt(v) },
        { label: 'Max', stroke: '#1e3a8a', width: 1, points: { show: false }, value: (u, v) => fmt(v) },
      );
    }
    draw('chart-followers', `${timeline.resolution}`, series, followers, from, to);
    draw(
      'chart-ratio',
      'ratio',
      [
        {},
        {
          label: 'Follower ratio',
          stroke: '#059669',
          width: 2,
          points: { show: points.length < 60 },
          value: (u, v) => fmt(v, dec),
        },
      ],
      [xs, points.map((p) => p.followerRatio)],
      from,
      to,
    );
  }

  function chartSize(el) {
    const width = Math.max(200, Math.floor(el.clientWidth));
    const height = window.innerWidth < 640 ? 180 : 240;
    return { width, height };
  }

  /** Draws into `id`: reuses the chart when its series are the same, otherwise builds it anew. */
  function draw(id, signature, series, data, from, to) {
    const el = $(id);
    const key = `${signature}:${series.length}`;
    let entry = charts.get(id);
    const xRange = [Math.floor(from / 1000), Math.ceil(to / 1000)];
    if (entry && entry.key === key) {
      entry.range = xRange;
      entry.chart.setData(data);
    } else {
      if (entry) entry.chart.destroy();
      el.textContent = '';
      entry = { key, range: xRange, chart: null };
      const ref = entry;
      entry.chart = new uPlot(
        {
          ...chartSize(el),
          series,
          scales: { x: { time: true, range: () => ref.range } },
          axes: [
            { stroke: '#64748b', grid: { stroke: '#e2e8f0' } },
            {
              stroke: '#64748b',
              grid: { stroke: '#e2e8f0' },
              size: 56,
              values: (u, splits) => splits.map((v) => compact.format(v)),
            },
          ],
          legend: { live: true },
          cursor: { drag: { x: false, y: false } },
        },
        data,
        el,
      );
      charts.set(id, entry);
    }
    // what was drawn, for tests and the curious: the number of points and the range asked for
    el.dataset.points = String(data[0].length);
    el.dataset.from = String(from);
    el.dataset.to = String(to);
  }

  // ---- side panels -------------------------------------------------------------------------

  async function loadSide() {
    await Promise.all([loadStats(), loadTop(), loadCluster()]);
  }

  async function loadStats() {
    try {
      const s = await api('/api/v1/stats');
      $('tracked').textContent = fmt(s.influencers);
      $('all-average').textContent = fmt(s.averageFollowers, dec);
    } catch {
      /* shown as – */
    }
  }

  async function loadTop() {
    pressed('[data-sort]', 'sort', state.sort);
    const list = $('top-list');
    try {
      const { influencers } = await api(`/api/v1/influencers?sort=${state.sort}&limit=10`);
      list.textContent = '';
      for (const row of influencers) {
        const li = document.createElement('li');
        const a = document.createElement('a');
        a.href = `#pk=${row.pk}&range=${state.range}`;
        a.dataset.pk = String(row.pk);
        const name = document.createElement('span');
        name.className = 'name';
        name.textContent = row.username || `pk ${row.pk}`;
        const value = document.createElement('span');
        value.className = 'value';
        value.textContent = state.sort === 'growth' ? signed(row.growth) : compact.format(row.followerCount ?? 0);
        a.append(name, value);
        li.append(a);
        list.append(li);
      }
      if (influencers.length === 0) list.innerHTML = '<li class="muted">no data yet</li>';
      if (state.pk === null && influencers.length > 0) {
        state.pk = influencers[0].pk;
        void loadInfluencer();
      }
    } catch (err) {
      list.innerHTML = '';
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = err.message;
      list.append(li);
    }
  }

  async function loadCluster() {
    const body = $('members');
    try {
      const c = await api('/api/v1/cluster');
      $('cluster-summary').textContent =
        `${c.summary.active} active of ${c.summary.members}${c.summary.balance ? ` · balance ${c.summary.balance}` : ''}`;
      body.textContent = '';
      for (const m of c.members) {
        const tr = document.createElement('tr');
        const cells = m.readable
          ? [
              m.id,
              m.state + (m.healthy ? '' : ' (stale)'),
              m.sharePct === undefined ? '–' : `${dec.format(m.sharePct)}%`,
              fmt(m.stats && m.stats.owned),
              m.stats && typeof m.stats.onTimePct === 'number' ? `${dec.format(m.stats.onTimePct)}%` : '–',
            ]
          : [m.id, 'unreadable', '–', '–', '–'];
        cells.forEach((text, i) => {
          const td = document.createElement('td');
          td.textContent = text;
          if (i >= 2) td.className = 'num';
          if (i === 1) td.className = m.healthy ? 'ok' : 'warn';
          tr.append(td);
        });
        body.append(tr);
      }
      if (c.members.length === 0)
        body.innerHTML = '<tr><td colspan="5" class="muted">no members: no node is running</td></tr>';
    } catch (err) {
      body.innerHTML = '';
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = 5;
      td.className = 'muted';
      td.textContent = err.message;
      tr.append(td);
      body.append(tr);
    }
  }

  // ---- events ------------------------------------------------------------------------------

  $('search').addEventListener('submit', (e) => {
    e.preventDefault();
    const raw = $('pk-input').value.trim();
    if (!/^\d+$/.test(raw)) {
      showMessage(`"${raw}" is not a pk: enter digits only, e.g. 1000042.`, 'error');
      return;
    }
    state.pk = Number(raw);
    void loadInfluencer();
  });
  for (const b of document.querySelectorAll('[data-range]')) {
    b.addEventListener('click', () => {
      state.range = b.dataset.range;
      void loadInfluencer();
    });
  }
  for (const b of document.querySelectorAll('[data-sort]')) {
    b.addEventListener('click', () => {
      state.sort = b.dataset.sort;
      void loadTop();
    });
  }
  $('top-list').addEventListener('click', (e) => {
    const a = e.target.closest('a[data-pk]');
    if (!a) return;
    e.preventDefault();
    state.pk = Number(a.dataset.pk);
    void loadInfluencer();
  });
  window.addEventListener('hashchange', () => {
    const before = `${state.pk}:${state.range}`;
    readHash();
    if (`${state.pk}:${state.range}` !== before) void loadInfluencer();
  });
  let resizeTimer;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const [id, entry] of charts) entry.chart.setSize(chartSize($(id)));
    }, 100);
  });

  readHash();
  void loadInfluencer();
  void loadSide();
  setInterval(() => {
    void loadInfluencer();
    void loadSide();
  }, REFRESH_MS);
})();
