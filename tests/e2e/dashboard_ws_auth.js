#!/usr/bin/env node
// tests/e2e/dashboard_ws_auth.js - one WebSocket upgrade to the dashboard
// with chosen credentials and Origin, for tests/e2e/test_dashboard_auth.sh.
//
//   node dashboard_ws_auth.js URL [cookie=VALUE] [origin=ORIGIN] [bearer=TOKEN] [ca=FILE] [host=HOST]
// (ca: the CA a wss:// server's certificate must be signed by)
// Prints "open <type of the first message>" and exits 0 when the upgrade is
// accepted, or "refused <HTTP status> <body>" and exits 1.
'use strict';
const fs = require('fs');
const path = require('path');
const WebSocket = require(path.join(__dirname, '..', '..', 'node_modules', 'ws'));

const [url, ...args] = process.argv.slice(2);
const opt = Object.fromEntries(args.map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
const headers = {};
if (opt.cookie) headers.Cookie = `fs_session=${opt.cookie}`;
if (opt.bearer) headers.Authorization = `Bearer ${opt.bearer}`;
if (opt.host) headers.Host = opt.host;
const o = { headers };
if (opt.origin) o.origin = opt.origin;
if (opt.ca) o.ca = fs.readFileSync(opt.ca);
const ws = new WebSocket(url, o);
const timer = setTimeout(() => { console.log('timeout'); process.exit(1); }, 5000);
ws.on('unexpected-response', (req, res) => {
  let body = '';
  res.on('data', (d) => { body += d; });
  res.on('end', () => { console.log(`refused ${res.statusCode} ${body}`); process.exit(1); });
});
let seen = false;
ws.on('message', (d) => {
  if (seen) return;
  seen = true;
  let type = '?';
  try { type = JSON.parse(String(d)).type; } catch (e) { /* not JSON */ }
  console.log(`open ${type}`);
  clearTimeout(timer);
  ws.close();
  setTimeout(() => process.exit(0), 100);
});
ws.on('error', (e) => { console.log(`error ${e.message}`); process.exit(1); });
