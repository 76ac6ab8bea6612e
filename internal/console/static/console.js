// Sightline console: live overview charts, live sections and fault drills. Plain
// JavaScript, no dependencies, no build step.
(function () {
  "use strict";

  var COLORS = ["#0b5cad", "#d9480f", "#2f9e44", "#862e9c", "#e8590c", "#1098ad"];

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    var a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    return v.toPrecision(2);
  }

  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function clock(ms) { var d = new Date(ms); return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()); }

  // draw plots lines ({label, values, color, dashed, pct}) against times t
  // (unix ms) on canvas, with a y axis from 0 and a legend, and marks each
  // annotation ({t, text, kind}) in the window with a vertical line.
  function draw(canvas, t, lines, pct, notes) {
    var dpr = window.devicePixelRatio || 1;
    var cssW = canvas.clientWidth || 600, cssH = Math.round(cssW * 220 / 600);
    canvas.width = cssW * dpr; canvas.height = cssH * dpr;
    var g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    g.font = "11px system-ui, sans-serif";
    var L = 46, R = 8, T = 22, B = 20, w = cssW - L - R, h = cssH - T - B;
    var ymax = 0;
    lines.forEach(function (ln) { ln.values.forEach(function (v) { if (v !== null && v > ymax) ymax = v; }); });
    if (ymax <= 0) ymax = pct ? 0.01 : 1;
    ymax *= 1.1;
    var t0 = t.length ? t[0] : 0, t1 = t.length ? t[t.length - 1] : 1;
    if (t1 <= t0) t1 = t0 + 1;
    function X(ms) { return L + (ms - t0) / (t1 - t0) * w; }
    function Y(v) { return T + h - v / ymax * h; }
    g.strokeStyle = "#d0d7de"; g.fillStyle = "#57606a"; g.lineWidth = 1;
    for (var i = 0; i <= 4; i++) {
      var v = ymax * i / 4, y = Math.round(Y(v)) + 0.5;
      g.beginPath(); g.moveTo(L, y); g.lineTo(L + w, y); g.stroke();
      g.fillText(pct ? fmt(v * 100) + "%" : fmt(v), 2, y + 4);
    }
    if (t.length) {
      g.fillText(clock(t0), L, cssH - 5);
      var lbl = clock(t1) + " UTC";
      g.fillText(lbl, L + w - g.measureText(lbl).width, cssH - 5);
    } else {
      g.fillText("waiting for data…", L + 8, T + h / 2);
    }
    (notes || []).forEach(function (a) {
      if (!t.length || a.t < t0 || a.t > t1) return;
      var x = Math.round(X(a.t)) + 0.5;
      g.strokeStyle = a.kind === "rollback" ? "#cf222e" : "#8250df"; g.lineWidth = 1;
      g.setLineDash([3, 3]);
      g.beginPath(); g.moveTo(x, T); g.lineTo(x, T + h); g.stroke();
      g.setLineDash([]);
      g.fillStyle = g.strokeStyle;
      var tw = g.measureText(a.text).width;
      g.fillText(a.text, Math.min(x + 3, L + w - tw), T + 10);
    });
    var lx = L;
    lines.forEach(function (ln) {
      g.strokeStyle = ln.color; g.lineWidth = 2;
      g.setLineDash(ln.dashed ? [5, 4] : []);
      g.beginPath();
      var pen = false;
      for (var k = 0; k < t.length; k++) {
        var val = ln.values[k];
        if (val === null || val === undefined) { pen = false; continue; }
        if (pen) g.lineTo(X(t[k]), Y(val)); else g.moveTo(X(t[k]), Y(val));
        pen = true;
      }
      g.stroke();
      g.setLineDash([]);
      g.fillStyle = ln.color;
      g.fillRect(lx, 6, 10, 3);
      g.fillStyle = "#1b1f24";
      g.fillText(ln.label, lx + 13, 12);
      lx += 20 + g.measureText(ln.label).width;
    });
  }

  function chartsFor(d) {
    var s = d.series, out = {};
    out.rate = { lines: [
      { label: "requests/s", values: s.requests_per_second, color: COLORS[0] },
      { label: "events/s", values: s.events_per_second, color: COLORS[2] }] };
    out.latency = { lines: [
      { label: "p50", values: s.latency_p50_ms, color: COLORS[2] },
      { label: "p95", values: s.latency_p95_ms, color: COLORS[0] },
      { label: "p99", values: s.latency_p99_ms, color: COLORS[1] }] };
    out.errors = { pct: true, lines: [
      { label: "errors", values: s.error_rate, color: COLORS[1] },
      { label: "fallbacks", values: s.fallback_rate, color: COLORS[3] }] };
    var ctr = [];
    d.variants.forEach(function (v, i) {
      var c = COLORS[i % COLORS.length];
      ctr.push({ label: v, values: d.ctr[v].ctr, color: c });
      if (d.ctr[v].baseline.some(function (x) { return x !== null; })) {
        ctr.push({ label: v + " baseline", values: d.ctr[v].baseline, color: c, dashed: true });
      }
    });
    out.ctr = { pct: true, lines: ctr };
    out.lag = { lines: [{ label: "ingest lag s", values: s.ingest_lag_seconds, color: COLORS[4] }] };
    return out;
  }

  function updateLatest(latest) {
    document.querySelectorAll("#latest dd[data-key]").forEach(function (dd) {
      var v = latest[dd.getAttribute("data-key")];
      if (v === undefined) return;
      dd.textContent = dd.hasAttribute("data-pct") ? (v * 100).toFixed(2) + "%" : fmt(v) + (dd.getAttribute("data-unit") || "");
    });
  }

  function startCharts(root) {
    var url = root.getAttribute("data-series-url");
    var every = Math.max(1, parseFloat(root.getAttribute("data-refresh")) || 5) * 1000;
    var status = document.getElementById("charts-status");
    var last = null;
    function render() {
      if (!last) return;
      var cs = chartsFor(last);
      root.querySelectorAll("canvas[data-chart]").forEach(function (cv) {
        var c = cs[cv.getAttribute("data-chart")];
        if (c) draw(cv, last.t, c.lines, c.pct, last.annotations);
      });
    }
    function tick() {
      fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (d) {
        last = d;
        render();
        updateLatest(d.latest || {});
        root.setAttribute("data-points", String(d.t.length));
      }).catch(function (e) {
        if (status) status.textContent = "Chart refresh failed: " + e.message;
      });
    }
    tick();
    setInterval(tick, every);
    window.addEventListener("resize", render);
  }

  // startLive refreshes a server-rendered section in place: every
  // data-live seconds it fetches the page again and swaps in the element
  // of the same id (the server escaped it; DOMParser runs no script).
  // Open <details> stay open. data-refreshed counts the swaps.
  function startLive(el) {
    var id = el.id;
    var every = Math.max(1, parseFloat(el.getAttribute("data-live")) || 5) * 1000;
    var n = 0;
    function tick() {
      fetch(location.href, { headers: { Accept: "text/html" } }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      }).then(function (html) {
        var cur = document.getElementById(id);
        var next = new DOMParser().parseFromString(html, "text/html").getElementById(id);
        if (!cur || !next) return;
        var open = {};
        cur.querySelectorAll("details[id]").forEach(function (d) { open[d.id] = d.open; });
        cur.innerHTML = next.innerHTML;
        cur.querySelectorAll("details[id]").forEach(function (d) { if (d.id in open) d.open = open[d.id]; });
        cur.setAttribute("data-refreshed", String(++n));
        cur.removeAttribute("data-live-error");
      }).catch(function (e) {
        var cur = document.getElementById(id);
        if (cur) cur.setAttribute("data-live-error", e.message);
      });
    }
    setInterval(tick, every);
  }

  function startDrills(form) {
    var url = form.getAttribute("data-faults-url");
    var status = document.getElementById("drill-status");
    function send(name, active) {
      var token = document.getElementById("drill-token").value;
      if (!token) { status.textContent = "Enter the admin token first."; document.getElementById("drill-token").focus(); return; }
      if (!name) { status.textContent = "Enter a fault name."; return; }
      status.textContent = (active ? "Starting " : "Stopping ") + name + "…";
      fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
        body: JSON.stringify({ name: name, active: active })
      }).then(function (r) {
        if (r.ok) {
          status.textContent = name + (active ? " started." : " stopped.") + " Reloading…";
          setTimeout(function () { location.reload(); }, 800);
        } else if (r.status === 401 || r.status === 403) {
          status.textContent = "Refused: the token is not valid (HTTP " + r.status + ").";
        } else {
          return r.text().then(function (t) { status.textContent = "Failed (HTTP " + r.status + "): " + t.slice(0, 300); });
        }
      }).catch(function (e) { status.textContent = "Failed: " + e.message; });
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = ev.submitter;
      var active = !btn || btn.getAttribute("data-active") !== "false";
      var nameInput = document.getElementById("drill-name");
      send(nameInput ? nameInput.value.trim() : "", active);
    });
    document.querySelectorAll("button.fault").forEach(function (b) {
      b.addEventListener("click", function () {
        send(b.getAttribute("data-name"), b.getAttribute("data-active") === "true");
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var charts = document.getElementById("charts");
    if (charts && window.fetch) startCharts(charts);
    if (window.fetch && window.DOMParser) {
      document.querySelectorAll("[data-live][id]").forEach(startLive);
    }
    var drill = document.getElementById("drill-form");
    if (drill) startDrills(drill);
  });
})();
