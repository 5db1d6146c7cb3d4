/**
 * The dashboard's page: static HTML and a small script that draws with uPlot. Served as strings so the
 * package ships no extra asset files; the script never puts data into HTML (textContent only), since
 * labels, stacks and messages come from the application.
 */
export function pageHtml(title: string): string {
  const safeTitle = title.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${safeTitle}</title>
<link rel="stylesheet" href="uplot.css">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f8f9fa; color: #212529; }
  header { background: #1864ab; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  #status { font-size: 12px; opacity: 0.85; }
  main { padding: 12px 20px; display: grid; gap: 16px; }
  section { background: #fff; border: 1px solid #dee2e6; border-radius: 6px; padding: 10px 14px; }
  section h2 { font-size: 15px; margin: 0 0 6px; }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 10px; }
  .chart { min-height: 250px; }
  .figures { font-size: 12px; color: #495057; margin-bottom: 4px; }
  table { border-collapse: collapse; font-size: 12px; }
  td, th { border-bottom: 1px solid #e9ecef; padding: 2px 8px; text-align: right; }
  td:first-child, th:first-child { text-align: left; font-family: ui-monospace, monospace; }
  ul { margin: 0; padding-left: 18px; }
  li { margin: 4px 0; }
  .alert.critical { color: #c92a2a; font-weight: 600; }
  .alert.warning { color: #e67700; }
  .code { font-family: ui-monospace, monospace; font-size: 12px; }
  pre { font-size: 11px; background: #f1f3f5; padding: 6px; overflow-x: auto; margin: 4px 0; }
  .empty { color: #868e96; font-style: italic; }
</style>
</head>
<body>
<header><h1>${safeTitle}</h1><span id="status">connecting...</span></header>
<main>
  <section id="alerts-section"><h2>Active alerts</h2><ul id="alerts"></ul></section>
  <div id="pools"></div>
  <div id="servers"></div>
  <section id="sockets-section"><h2>Sockets by TCP state</h2><div class="figures" id="process-figures"></div>
    <div class="chart" id="sockets-chart"></div><table id="remotes"></table></section>
  <section id="leaks-section"><h2>Leak reports</h2><ul id="leaks"></ul></section>
</main>
<script src="uplot.js"></script>
<script src="app.js"></script>
</body>
</html>
`;
}

/** The page's script (plain ES2017, no build step). */
export const APP_JS = `(function () {
  'use strict';
  var charts = {};
  var latest = null;
  var api = { charts: charts, updates: 0, state: function () { return latest; } };
  window.__lifeguard = api;
  var COLORS = { idle: '#2f9e44', used: '#1c7ed6', pending: '#e8590c', p50: '#1c7ed6', p90: '#f08c00', p99: '#e03131',
    open: '#495057', active: '#1c7ed6', upgraded: '#9c36b5', halfClosed: '#e03131' };
  var STATE_COLORS = { CLOSE_WAIT: '#e03131', ESTABLISHED: '#2f9e44', TIME_WAIT: '#868e96', FIN_WAIT1: '#f08c00', FIN_WAIT2: '#fab005', LAST_ACK: '#9c36b5', SYN_SENT: '#1c7ed6', SYN_RECV: '#15aabf', CLOSING: '#d6336c' };
  var STATE_ORDER = ['CLOSE_WAIT', 'ESTABLISHED', 'TIME_WAIT', 'FIN_WAIT1', 'FIN_WAIT2', 'LAST_ACK', 'SYN_SENT', 'SYN_RECV', 'CLOSING'];

  // Whole seconds and up (uPlot's defaults go down to milliseconds: a few samples got a label every 0.5 s).
  var TIME_INCRS = [1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  /** Draws or updates one chart; a chart whose series changed is rebuilt. */
  function draw(key, container, title, series, data, yLabel) {
    var signature = series.map(function (s) { return s.label; }).join('|');
    var chart = charts[key];
    if (chart && chart.signature === signature) { chart.setData(data); return; }
    if (chart) { chart.destroy(); }
    var options = {
      title: title,
      width: Math.max(360, container.clientWidth || 560),
      height: 220,
      scales: { x: { time: true } },
      axes: [{ incrs: TIME_INCRS, space: 60 }, { label: yLabel }],
      series: [{}].concat(series.map(function (s) { return { label: s.label, stroke: s.color, width: 2 }; }))
    };
    chart = new uPlot(options, data, container);
    chart.signature = signature;
    charts[key] = chart;
  }

  /** The section of one pool or server, made on first sight: title, figure lines, a row of charts, then extras. */
  function entitySection(kind, name, title, figureClasses, chartClasses, extras) {
    var id = kind + '-' + encodeURIComponent(name);
    var section = document.getElementById(id);
    if (section) return section;
    section = el('section', kind);
    section.id = id;
    section.dataset[kind] = name;
    section.appendChild(el('h2', null, title));
    figureClasses.forEach(function (c) { section.appendChild(el('div', c)); });
    var row = el('div', 'charts');
    chartClasses.forEach(function (c) { row.appendChild(el('div', 'chart ' + c)); });
    section.appendChild(row);
    extras.forEach(function (node) { section.appendChild(node); });
    document.getElementById(kind + 's').appendChild(section);
    return section;
  }

  function poolSection(pool) {
    return entitySection('pool', pool.name, 'Pool ' + pool.name, ['figures'], ['connections', 'wait'], []);
  }

  function renderPools(state) {
    var seen = {};
    state.pools.forEach(function (pool) {
      seen[pool.name] = true;
      var section = poolSection(pool);
      section.querySelector('.figures').textContent = 'max ' + pool.max + ' · min ' + pool.min + ' · used ' + pool.used + ' · idle ' + pool.idle +
        ' · pending ' + pool.pending + ' · acquires ' + pool.acquired + ' · timeouts ' + pool.timeouts + ' · leak reports ' + pool.leaks;
      var b = pool.budget;
      if (b) {
        section.querySelector('.figures').textContent += ' · budget "' + b.key + '": ' + b.createsWaiting + ' creations waiting for a permit (limit ' + b.limit +
          ', held here ' + b.heldHere + ', waiting here ' + b.waitingHere + ', held in fleet ' + b.heldInFleet + ', waiting in fleet ' + b.waitingInFleet + ')';
      }
      var s = pool.series;
      draw('connections:' + pool.name, section.querySelector('.connections'), 'Connections of ' + pool.name,
        [{ label: 'used', color: COLORS.used }, { label: 'idle', color: COLORS.idle }, { label: 'pending', color: COLORS.pending }],
        [s.t, s.used, s.idle, s.pending], 'count');
      draw('wait:' + pool.name, section.querySelector('.wait'), 'Acquire wait time of ' + pool.name + ' (ms)',
        [{ label: 'p50', color: COLORS.p50 }, { label: 'p90', color: COLORS.p90 }, { label: 'p99', color: COLORS.p99 }],
        [s.t, s.p50, s.p90, s.p99], 'ms');
    });
    Array.prototype.slice.call(document.querySelectorAll('section.pool')).forEach(function (section) {
      if (seen[section.dataset.pool]) return;
      ['connections:', 'wait:'].forEach(function (prefix) {
        var key = prefix + section.dataset.pool;
        if (charts[key]) { charts[key].destroy(); delete charts[key]; }
      });
      section.parentNode.removeChild(section);
    });
  }

  function seconds(ms) { return ms === null || ms === undefined ? '' : (ms / 1000).toFixed(1) + ' s'; }

  function describeSocket(c) {
    return c.remote + (c.owner ? ' (' + c.owner + ')' : '') + ', ' + c.state + ', open ' + seconds(c.ageMs);
  }

  /** Servers guarded by lifeguard/server: their connections by state, half-closed, reaped, and the oldest sockets with their route. */
  function renderServers(list) {
    var container = document.getElementById('servers');
    var seen = {};
    list.forEach(function (server) {
      seen[server.name] = true;
      var section = entitySection('server', server.name, 'Server ' + server.name, ['figures', 'figures oldest'], ['server-connections'], [el('table', 'server-sockets')]);
      var c = server.connections;
      section.querySelector('.figures').textContent = (server.closed ? 'closed · ' : server.shuttingDown ? 'shutting down · ' : server.ready ? '' : 'not ready · ') +
        'open ' + server.open + ' (active ' + c.active + ', idle ' + c.idle + ', raw ' + c.open + ', upgraded ' + c.upgraded + ', ending ' + c.ending + ')' +
        ' · half-closed ' + server.halfClosed + ' · accepted ' + server.accepted +
        ' · reaped: half-closed ' + server.reaped.halfClosed + ', idle ' + server.reaped.idle + ', destroyed ' + server.reaped.destroyed +
        (server.lastShutdownMs !== null ? ' · last shutdown ' + seconds(server.lastShutdownMs) : '');
      section.querySelector('.oldest').textContent = server.oldest ? 'oldest: ' + describeSocket(server.oldest) : 'no connection open';
      var s = server.series;
      draw('server:' + server.name, section.querySelector('.server-connections'), 'Connections of server ' + server.name,
        [{ label: 'active', color: COLORS.active }, { label: 'idle', color: COLORS.idle }, { label: 'raw', color: COLORS.open },
          { label: 'upgraded', color: COLORS.upgraded }, { label: 'half-closed', color: COLORS.halfClosed }],
        [s.t, s.active, s.idle, s.open, s.upgraded, s.halfClosed], 'connections');
      var table = section.querySelector('.server-sockets');
      clear(table);
      if (server.sockets.length === 0) return;
      var head = el('tr');
      ['remote', 'route', 'state', 'age', 'idle', 'half-closed for', 'in flight'].forEach(function (h) { head.appendChild(el('th', null, h)); });
      table.appendChild(head);
      server.sockets.forEach(function (sock) {
        var tr = el('tr');
        tr.dataset.state = sock.state;
        [sock.remote, sock.owner || '', sock.state, seconds(sock.ageMs), seconds(sock.idleMs), seconds(sock.halfClosedMs), sock.inFlight].forEach(function (v) { tr.appendChild(el('td', null, v)); });
        table.appendChild(tr);
      });
    });
    Array.prototype.slice.call(container.querySelectorAll('section.server')).forEach(function (section) {
      if (seen[section.dataset.server]) return;
      var key = 'server:' + section.dataset.server;
      if (charts[key]) { charts[key].destroy(); delete charts[key]; }
      section.parentNode.removeChild(section);
    });
  }

  function renderSockets(sockets) {
    var figures = document.getElementById('process-figures');
    if (!sockets.available) { figures.textContent = 'socket table not available: ' + sockets.error; return; }
    figures.textContent = 'pid ' + sockets.pid + (sockets.fds ? ' · file descriptors ' + sockets.fds.open + ' of ' + sockets.fds.limit : '') +
      (sockets.threads !== null ? ' · threads ' + sockets.threads : '');
    var states = Object.keys(sockets.byState).sort(function (a, b) {
      var ia = STATE_ORDER.indexOf(a), ib = STATE_ORDER.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : 1);
    });
    draw('sockets', document.getElementById('sockets-chart'), 'Sockets by TCP state',
      states.map(function (st) { return { label: st, color: STATE_COLORS[st] || '#495057' }; }),
      [sockets.t].concat(states.map(function (st) { return sockets.byState[st]; })), 'sockets');
    var table = document.getElementById('remotes');
    clear(table);
    var head = el('tr');
    head.appendChild(el('th', null, 'remote'));
    head.appendChild(el('th', null, 'total'));
    states.forEach(function (st) { head.appendChild(el('th', null, st)); });
    table.appendChild(head);
    sockets.remotes.forEach(function (r) {
      var row = el('tr');
      row.appendChild(el('td', null, r.remote));
      row.appendChild(el('td', null, r.total));
      states.forEach(function (st) { row.appendChild(el('td', null, r.states[st] || 0)); });
      table.appendChild(row);
    });
  }

  function renderLeaks(leaks) {
    var list = document.getElementById('leaks');
    clear(list);
    if (leaks.length === 0) { list.appendChild(el('li', 'empty', 'no leak reported')); return; }
    leaks.forEach(function (leak) {
      var item = el('li', 'leak ' + leak.kind + (leak.open ? ' open' : ''));
      item.dataset.pool = leak.pool;
      item.dataset.lease = String(leak.leaseId);
      item.appendChild(el('div', 'code', (leak.open ? '[open] ' : '[' + leak.kind + '] ') + leak.message));
      if (leak.stack) {
        var details = el('details');
        details.appendChild(el('summary', null, 'acquired at ' + (leak.site || '?')));
        details.appendChild(el('pre', 'stack', leak.stack));
        item.appendChild(details);
      }
      list.appendChild(item);
    });
  }

  function renderAlerts(alerts) {
    var list = document.getElementById('alerts');
    clear(list);
    if (alerts.length === 0) { list.appendChild(el('li', 'empty', 'none')); return; }
    alerts.forEach(function (alert) {
      var item = el('li', 'alert ' + alert.severity);
      item.dataset.code = alert.code;
      item.appendChild(el('span', 'code', alert.code + ' '));
      item.appendChild(el('span', null, alert.message));
      list.appendChild(item);
    });
  }

  function render(state) {
    latest = state;
    renderPools(state);
    renderServers(state.servers || []);
    renderSockets(state.sockets);
    renderLeaks(state.leaks);
    renderAlerts(state.alerts);
    api.updates++;
    document.getElementById('status').textContent = 'updated ' + new Date(state.generatedAt).toLocaleTimeString() + ' · every ' + state.sampleIntervalMs + ' ms';
  }

  // Polled, not the event stream: an open EventSource is a fetch that never ends, and a headless browser
  // taking a screenshot on virtual time (--virtual-time-budget) stops its clock while any fetch is pending.
  function poll() {
    var wait = 1000;
    fetch('api/state', { cache: 'no-store' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (state) {
      render(state);
      wait = state.sampleIntervalMs;
    }, function () {
      document.getElementById('status').textContent = 'disconnected, retrying...';
    }).then(function () { setTimeout(poll, Math.max(100, wait)); });
  }
  poll();
})();
`;
