#!/usr/bin/env node
// bench/dashboard-fanout.js - N WebSocket clients of `fleetsync dashboard` in
// one process, for bench/dashboard's fan-out figure (npm package `ws`,
// installed by scripts/bootstrap).
//
//   node bench/dashboard-fanout.js URL N WARMUP_MS MEASURE_MS [VIEWPORT_JSON]
//
// Every client connects and sends the viewport (default: the whole world at
// zoom 3); messages are counted only during the MEASURE_MS window that follows
// WARMUP_MS.  Prints one JSON object: clients asked for / connected / failed /
// closed early, the window, map frames (trucks + clusters) per second per
// client (min, median, mean, max), KiB/s per client, and messages by type.
'use strict';
const path = require('path');
const WebSocket = require(path.join(__dirname, '..', 'node_modules', 'ws'));

const [url, nArg, warmArg, measArg, vpArg] = process.argv.slice(2);
const n = Number(nArg), warm = Number(warmArg), meas = Number(measArg);
if (!url || !(n > 0) || !(warm >= 0) || !(meas > 0)) {
  console.error('usage: dashboard-fanout.js URL N WARMUP_MS MEASURE_MS [VIEWPORT_JSON]');
  process.exit(2);
}
const viewport = vpArg || '{"type":"viewport","bbox":[-180,-85,180,85],"zoom":3}';
const clients = [];
let measuring = false, done = false, opened = 0, failed = 0, closedEarly = 0;
const types = {};

for (let i = 0; i < n; i++) {
  const c = { frames: 0, bytes: 0, ws: new WebSocket(url) };
  c.ws.on('open', () => { opened++; c.ws.send(viewport); });
  c.ws.on('message', (data) => {
    if (!measuring) return;
    const s = data.toString();
    const m = /"type":"([a-z_]+)"/.exec(s.slice(0, 64));
    const t = m ? m[1] : '?';
    types[t] = (types[t] || 0) + 1;
    if (t === 'trucks' || t === 'clusters') c.frames++;
    c.bytes += s.length;
  });
  c.ws.on('error', () => { failed++; });
  c.ws.on('close', () => { if (!done) closedEarly++; });
  clients.push(c);
}

setTimeout(() => {
  measuring = true;
  const t0 = Date.now();
  setTimeout(() => {
    measuring = false;
    done = true;
    const s = (Date.now() - t0) / 1000;
    const fps = clients.map((c) => c.frames / s).sort((a, b) => a - b);
    const kib = clients.map((c) => c.bytes / 1024 / s);
    const r = (v) => Math.round(v * 100) / 100;
    const median = fps.length % 2 ? fps[(fps.length - 1) / 2] : (fps[fps.length / 2 - 1] + fps[fps.length / 2]) / 2;
    console.log(JSON.stringify({
      clients: n, connected: opened, failed, closed_early: closedEarly, window_s: r(s),
      fps_min: r(fps[0]), fps_median: r(median), fps_mean: r(fps.reduce((a, b) => a + b, 0) / n),
      fps_max: r(fps[fps.length - 1]), kib_per_s_per_client: r(kib.reduce((a, b) => a + b, 0) / n), types,
    }));
    for (const c of clients) c.ws.terminate();
    setTimeout(() => process.exit(0), 100);
  }, meas);
}, warm);
