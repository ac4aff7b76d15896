#!/usr/bin/env node
// tests/e2e/dashboard_ws.js - a scripted WebSocket client for the dashboard
// suites (npm package `ws`, installed by scripts/bootstrap).
//
//   node dashboard_ws.js URL STEP...
//     send:TEXT   sends TEXT as one text message
//     bin:TEXT    sends TEXT as one binary message
//     big:N       sends a text message of N bytes
//     wait:MS     waits
//     pause / resume   stop / start reading the socket (a slow client)
// Every message received is printed as one line: "<ms since open> <data>"
// (with WS_WALL=1: "<wall clock ms> <data>", to measure latency).
// Exits 0 after the last step, 1 if the connection fails or closes early.
'use strict';
const path = require('path');
const WebSocket = require(path.join(__dirname, '..', '..', 'node_modules', 'ws'));

const [url, ...steps] = process.argv.slice(2);
const ws = new WebSocket(url);
let t0 = 0, done = false;
const wall = process.env.WS_WALL === '1';
ws.on('message', (data) => { process.stdout.write(`${wall ? Date.now() : Date.now() - t0} ${data.toString()}\n`); });
ws.on('error', (e) => { console.error(`ws error: ${e.message}`); process.exit(1); });
ws.on('close', () => { if (!done) { console.error('closed by the server'); process.exit(1); } });
ws.on('open', async () => {
  t0 = Date.now();
  for (const s of steps) {
    const i = s.indexOf(':');
    const op = i < 0 ? s : s.slice(0, i), arg = i < 0 ? '' : s.slice(i + 1);
    if (op === 'send') ws.send(arg);
    else if (op === 'bin') ws.send(Buffer.from(arg), { binary: true });
    else if (op === 'big') ws.send('x'.repeat(Number(arg)));
    else if (op === 'wait') await new Promise((r) => setTimeout(r, Number(arg)));
    else if (op === 'pause') ws._socket.pause();
    else if (op === 'resume') ws._socket.resume();
    else { console.error(`unknown step ${s}`); process.exit(2); }
  }
  done = true;
  ws.close();
  setTimeout(() => process.exit(0), 200);
});
