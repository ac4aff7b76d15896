/* FleetSync live map: plain JS, no build step.  Talks to the dashboard's
 * /ws (protocol: docs/dashboard.md) and /api; loads nothing from outside
 * this server unless the dashboard was started with --tile-url. */
(function () {
  'use strict';
  var COLORS = { moving: '#2e9d3a', idle: '#e3a008', parked: '#3b6fd8', offline: '#8a8f98' };
  var map = L.map('map', { worldCopyJump: false, minZoom: 2, maxZoom: 18, zoomControl: true }).setView([50, 10], 4);
  map.attributionControl.setPrefix(false);
  var truckLayer = L.layerGroup().addTo(map);
  var clusterLayer = L.layerGroup().addTo(map);
  var trucks = new Map();   /* truck_id -> {marker, data} */
  var selected = null, ws = null, backoff = 500, alertItems = new Map(), lastAlertMs = Date.now() - 3600 * 1000;
  var stats = { frames: 0, upserts: 0, clusters: 0, lastFrame: null, errors: [], conn: [] };
  window.fleetsync = { map: map, trucks: trucks, stats: stats, select: select };

  /* ---- basemap: country borders from world-atlas (offline) ---- */
  fetch('/vendor/world-atlas/countries-50m.json').then(function (r) { return r.json(); }).then(function (topo) {
    var land = topojson.feature(topo, topo.objects.countries);
    /* Rings that cross the antimeridian jump from +180 to -180: unwrap them so
     * that no edge spans the whole map. */
    var unwrap = function (ring) {
      var out = [], shift = 0;
      for (var i = 0; i < ring.length; i++) {
        var lon = ring[i][0] + shift;
        if (i > 0) {
          var d = lon - out[i - 1][0];
          if (d > 180) { shift -= 360; lon -= 360; } else if (d < -180) { shift += 360; lon += 360; }
        }
        out.push([lon, ring[i][1]]);
      }
      return out;
    };
    land.features.forEach(function (f) {
      var g = f.geometry;
      if (!g) return;
      if (g.type === 'Polygon') g.coordinates = g.coordinates.map(unwrap);
      else if (g.type === 'MultiPolygon') g.coordinates = g.coordinates.map(function (poly) { return poly.map(unwrap); });
    });
    L.geoJSON(land, { style: { color: '#8aa0b4', weight: 1, fillColor: '#f4f1ea', fillOpacity: 1 }, interactive: false })
      .addTo(map).bringToBack();
  }).catch(function (e) { console.warn('basemap', e); });
  /* With --auth-file the API answers 401 once the session has ended (expired,
   * or the dashboard restarted): back to the sign-in page. */
  function loginGone(r) {
    if (r.status === 401) { location.href = '/login'; return true; }
    return false;
  }
  fetch('/api/config').then(function (r) { return loginGone(r) ? null : r.json(); }).then(function (c) {
    if (!c) return;
    if (c.tile_url) L.tileLayer(c.tile_url, { maxZoom: 19 }).addTo(map).bringToBack();
    if (c.login) document.getElementById('logout').hidden = false;
  });

  /* ---- counters ---- */
  function counters(f) {
    ['trucks', 'moving', 'idle', 'parked', 'offline'].forEach(function (k) {
      document.getElementById('n-' + k).textContent = f[k];
    });
  }
  fetch('/api/fleet').then(function (r) { return r.json(); }).then(counters);

  /* ---- trucks ---- */
  /* The page runs under a Content-Security-Policy without inline styles:
   * the rotation is an SVG attribute, not a style. */
  function arrow(state, heading) {
    return '<svg viewBox="-11 -11 22 22"><path transform="rotate(' + (Number(heading) || 0) + ')" ' +
      'd="M0,-10 L7,8 L0,4 L-7,8 Z" fill="' + (COLORS[state] || '#555') + '" stroke="#fff" stroke-width="1.5"/></svg>';
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; });
  }
  function truckIcon(t) {
    return L.divIcon({ className: 'truck' + (selected === t.truck_id ? ' selected' : ''), iconSize: [22, 22],
      html: '<div data-id="' + esc(t.truck_id) + '" data-state="' + esc(t.state) + '">' + arrow(t.state, t.heading_deg) + '</div>' });
  }
  function upsert(t) {
    var e = trucks.get(t.truck_id);
    if (!e) {
      var m = L.marker([t.lat, t.lon], { icon: truckIcon(t), title: t.truck_id, keyboard: false });
      m.on('click', function () { select(t.truck_id); });
      m.addTo(truckLayer);
      e = { marker: m, data: t };
      trucks.set(t.truck_id, e);
    } else {
      var old = e.data;
      e.data = t;
      e.marker.setLatLng([t.lat, t.lon]);
      if (old.state !== t.state || old.heading_deg !== t.heading_deg) e.marker.setIcon(truckIcon(t));
    }
    if (selected === t.truck_id) refreshPanel();
  }
  function remove(id) {
    var e = trucks.get(id);
    if (!e) return;
    truckLayer.removeLayer(e.marker);
    trucks.delete(id);
  }
  function clearTrucks() { truckLayer.clearLayers(); trucks.clear(); }

  function showClusters(list) {
    clusterLayer.clearLayers();
    list.forEach(function (c) {
      var size = 26 + Math.min(30, Math.round(Math.log10(c.count + 1) * 8));
      var label = c.count >= 10000 ? Math.round(c.count / 1000) + 'k' : String(c.count);
      var m = L.marker([c.lat, c.lon], { icon: L.divIcon({ className: 'cluster', iconSize: [size, size],
        html: '<div>' + label + '</div>' }), keyboard: false });
      m.on('click', function () { map.setView([c.lat, c.lon], Math.min(map.getZoom() + 2, 18)); });
      m.addTo(clusterLayer);
    });
  }

  /* ---- side panel ---- */
  function fmtTime(ms) { return ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '–'; }
  function ago(ms) { var s = Math.round((Date.now() - ms) / 1000); return s < 60 ? s + ' s ago' : Math.round(s / 60) + ' min ago'; }
  var panelTimer = null, trackLayer = null;
  /* Today's track from the history pipeline; the live map does without it. */
  function loadTrack(id) {
    if (trackLayer) { map.removeLayer(trackLayer); trackLayer = null; }
    document.getElementById('p-track').textContent = '…';
    fetch('/api/trucks/' + encodeURIComponent(id) + '/track').then(function (r) {
      return r.ok ? r.json() : Promise.reject(r.status);
    }).then(function (t) {
      if (id !== selected) return;
      if (!t.history) { document.getElementById('p-track').textContent = 'history not reachable'; return; }
      var pts = t.points.map(function (p) { return [p[1], p[0]]; });
      document.getElementById('p-track').textContent = pts.length + ' readings stored today';
      if (pts.length > 1) trackLayer = L.polyline(pts, { color: '#1565c0', weight: 3, opacity: 0.7 }).addTo(map);
    }).catch(function () {
      if (id === selected) document.getElementById('p-track').textContent = 'history not reachable';
    });
  }
  function select(id) {
    var prev = selected;
    selected = id;
    [prev, id].forEach(function (k) { var e = k && trucks.get(k); if (e) e.marker.setIcon(truckIcon(e.data)); });
    document.getElementById('panel').hidden = false;
    document.getElementById('p-id').textContent = id;
    refreshPanel();
    loadTrack(id);
    clearInterval(panelTimer);
    panelTimer = setInterval(refreshPanel, 2000);
  }
  function refreshPanel() {
    if (!selected) return;
    var id = selected;
    fetch('/api/trucks/' + encodeURIComponent(id)).then(function (r) { return r.ok ? r.json() : null; }).then(function (t) {
      if (!t || id !== selected) return;
      document.getElementById('p-state').textContent = t.state;
      document.getElementById('p-speed').textContent = t.speed_kmh + ' km/h';
      document.getElementById('p-heading').textContent = t.heading_deg !== undefined ? t.heading_deg + '°' : '–';
      document.getElementById('p-fuel').textContent = t.fuel_pct !== undefined ? t.fuel_pct + ' %' : '–';
      document.getElementById('p-ignition').textContent = t.ignition ? 'on' : 'off';
      document.getElementById('p-seen').textContent = fmtTime(t.last_seen_ms) + ' (' + ago(t.last_seen_ms) + ')';
      document.getElementById('p-pos').textContent = t.lat.toFixed(5) + ', ' + t.lon.toFixed(5);
    }).catch(function () {});
  }
  document.getElementById('panel-close').onclick = function () {
    var prev = selected; selected = null; clearInterval(panelTimer);
    if (trackLayer) { map.removeLayer(trackLayer); trackLayer = null; }
    document.getElementById('panel').hidden = true;
    var e = prev && trucks.get(prev); if (e) e.marker.setIcon(truckIcon(e.data));
  };

  /* ---- alerts ---- */
  function addAlert(a) {
    var li = alertItems.get(a.alert_id);
    if (a.state === 'cleared') {
      if (li) { li.classList.add('cleared'); li.querySelector('.state').textContent = ' cleared ' + fmtTime(a.ended_ms); }
      else { li = alertItem(a); li.classList.add('cleared'); }
      return;
    }
    if (li) return;
    alertItem(a);
  }
  function alertItem(a) {
    var li = document.createElement('li');
    li.setAttribute('data-alert-id', a.alert_id);
    var rule = document.createElement('span'); rule.className = 'rule'; rule.textContent = a.rule;
    var who = document.createElement('span'); who.textContent = ' ' + a.truck_id;
    var when = document.createElement('div'); when.className = 'when';
    when.textContent = fmtTime(a.started_ms || a.detected_ms);
    var st = document.createElement('span'); st.className = 'state';
    if (a.state === 'cleared') st.textContent = ' cleared ' + fmtTime(a.ended_ms);
    when.appendChild(st);
    li.appendChild(rule); li.appendChild(who); li.appendChild(when);
    li.onclick = function () {
      if (typeof a.lat === 'number' && typeof a.lon === 'number') map.flyTo([a.lat, a.lon], 13);
      select(a.truck_id);
    };
    var list = document.getElementById('alert-list');
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 500) { var last = list.lastChild; alertItems.delete(last.getAttribute('data-alert-id')); list.removeChild(last); }
    alertItems.set(a.alert_id, li);
    return li;
  }
  function loadAlerts() {
    return fetch('/api/alerts?since=' + lastAlertMs).then(function (r) { return r.json(); }).then(function (list) {
      list.forEach(addAlert);
    }).catch(function () {});
  }

  /* ---- WebSocket ---- */
  function setConn(cls, text) {
    stats.conn.push(cls);
    if (stats.conn.length > 100) stats.conn.shift();
    var el = document.getElementById('conn');
    el.className = 'conn ' + cls;
    el.querySelector('span').textContent = text;
  }
  function viewport() {
    if (!ws || ws.readyState !== 1) return;
    var b = map.getBounds();
    var clamp = function (v, lo, hi) { return Math.max(lo, Math.min(hi, v)); };
    ws.send(JSON.stringify({ type: 'viewport', zoom: map.getZoom(),
      bbox: [clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90), clamp(b.getEast(), -180, 180), clamp(b.getNorth(), -90, 90)] }));
  }
  var vpTimer = null;
  map.on('moveend', function () { clearTimeout(vpTimer); vpTimer = setTimeout(viewport, 100); });

  function connect() {
    var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    ws = new WebSocket(proto + location.host + '/ws');
    var pinger = null;
    ws.onopen = function () {
      backoff = 500;
      setConn('connected', 'live');
      viewport();
      loadAlerts();
      pinger = setInterval(function () { if (ws.readyState === 1) ws.send('{"type":"ping"}'); }, 10000);
    };
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.type === 'trucks') {
        stats.frames++; stats.lastFrame = m;
        if (m.reset) { clusterLayer.clearLayers(); clearTrucks(); }
        m.upsert.forEach(upsert); stats.upserts += m.upsert.length;
        m.remove.forEach(remove);
      } else if (m.type === 'clusters') {
        stats.frames++; stats.clusters++; stats.lastFrame = m;
        clearTrucks();
        showClusters(m.clusters);
      } else if (m.type === 'fleet') {
        counters(m);
      } else if (m.type === 'alert') {
        addAlert(m.alert);
      } else if (m.type === 'dropped') {
        loadAlerts();
      } else if (m.type === 'error') {
        stats.errors.push(m);
      }
    };
    ws.onclose = function () {
      clearInterval(pinger);
      /* A refused upgrade looks like any close: ask the API whether the session is gone. */
      fetch('/api/config').then(loginGone).catch(function () {});
      setConn('reconnecting', 'reconnecting…');
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
    ws.onerror = function () { /* onclose follows */ };
  }
  connect();
})();
