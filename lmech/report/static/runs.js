// lmech run browser: sortable, filterable runs table and interactive metric curves (no dependencies).
// Every piece of user text goes in with textContent or setAttribute, never as HTML.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const columns = data.columns, rows = data.rows, series = data.series;
  const SVG = "http://www.w3.org/2000/svg";
  const ticked = new Set();
  let sortColumn = null, sortDescending = false, shown = rows.slice();

  function el(tag, attrs, text) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function show(value) { return value === null || value === undefined ? "" : (typeof value === "number" ? (+value.toPrecision(6)).toString() : String(value)); }
  function compare(a, b) {
    if (a === null || a === undefined) return (b === null || b === undefined) ? 0 : 1;
    if (b === null || b === undefined) return -1;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }

  // ---- table ----
  const head = document.querySelector("#runs thead"), body = document.querySelector("#runs tbody");
  const headRow = el("tr");
  headRow.appendChild(el("th", {title: "tick runs to plot them"}, "plot"));
  columns.forEach((name, i) => {
    const th = el("th", {"data-column": name, title: "sort by " + name}, name);
    th.addEventListener("click", () => {
      sortDescending = sortColumn === i ? !sortDescending : false;
      sortColumn = i;
      head.querySelectorAll("th").forEach(h => h.classList.remove("sorted-asc", "sorted-desc"));
      th.classList.add(sortDescending ? "sorted-desc" : "sorted-asc");
      render();
    });
    headRow.appendChild(th);
  });
  head.appendChild(headRow);

  function matches(row, token) {
    const m = token.match(/^([A-Za-z0-9_]+)(=|>|<)(.*)$/);
    if (m && columns.includes(m[1])) {
      const value = row[columns.indexOf(m[1])], want = m[3];
      if (m[2] === "=") return show(value) === want || (typeof value === "number" && value === Number(want));
      if (typeof value !== "number" || want === "" || isNaN(Number(want))) return false;
      return m[2] === ">" ? value > Number(want) : value < Number(want);
    }
    const needle = token.toLowerCase();
    return row.some(v => show(v).toLowerCase().includes(needle));
  }
  function render() {
    const tokens = document.getElementById("filter").value.trim().split(/\s+/).filter(Boolean);
    shown = rows.filter(row => tokens.every(t => matches(row, t)));
    if (sortColumn !== null) {
      shown.sort((a, b) => compare(a[sortColumn], b[sortColumn]) * (sortDescending ? -1 : 1));
    }
    body.replaceChildren();
    for (const row of shown) {
      const tr = el("tr", {"data-run": String(row[0])});
      const box = el("input", {type: "checkbox", "aria-label": "plot run " + String(row[0])});
      box.checked = ticked.has(row[0]);
      box.addEventListener("change", () => { box.checked ? ticked.add(row[0]) : ticked.delete(row[0]); draw(); });
      const cell = el("td"); cell.appendChild(box); tr.appendChild(cell);
      row.forEach(v => tr.appendChild(el("td", {}, show(v))));
      body.appendChild(tr);
    }
    document.getElementById("shown").textContent = shown.length + " of " + rows.length + " run(s) shown";
    draw();
  }
  document.getElementById("filter").addEventListener("input", render);

  // ---- plot ----
  const metricSelect = document.getElementById("metric"), colorSelect = document.getElementById("color");
  const metrics = [...new Set(Object.values(series).flatMap(m => Object.keys(m)))].sort();
  metrics.forEach(name => metricSelect.appendChild(el("option", {value: name}, name)));
  const preferred = metrics.find(n => n === "loss/train") || metrics.find(n => n.startsWith("loss/")) || metrics[0];
  if (preferred) metricSelect.value = preferred;
  colorSelect.appendChild(el("option", {value: ""}, "(run)"));
  columns.filter(c => c !== "run_id").forEach(c => colorSelect.appendChild(el("option", {value: c}, c)));
  [metricSelect, colorSelect, document.getElementById("logx"), document.getElementById("logy")]
    .forEach(node => node.addEventListener("change", draw));
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const svg = document.getElementById("plot"), tip = document.getElementById("tip");

  function scale(lo, hi, a, b, log) {
    const f = log ? Math.log10 : (v => v);
    const l = f(lo), h = f(hi) === l ? l + 1 : f(hi);
    return v => a + (f(v) - l) / (h - l) * (b - a);
  }
  function ticks(lo, hi, log) {
    if (log) {
      const out = [];
      for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(Math.pow(10, e));
      return out.filter(t => t >= lo / 1.0001 && t <= hi * 1.0001);
    }
    const span = hi - lo || 1, step = Math.pow(10, Math.floor(Math.log10(span / 5)));
    const nice = [1, 2, 5, 10].map(m => m * step).find(s => span / s <= 6) || step * 10;
    const out = [];
    for (let t = Math.ceil(lo / nice) * nice; t <= hi + 1e-12 * span; t += nice) out.push(+t.toPrecision(12));
    return out;
  }
  let drawn = [], drawnColor = "";  // every plotted point in pixels, for the hover read-out
  svg.addEventListener("mousemove", ev => {
    const box = svg.getBoundingClientRect(), mx = ev.clientX - box.left, my = ev.clientY - box.top;
    let best = null, bestD = 400;  // within 20 px
    for (const p of drawn) { const d = (p.x - mx) ** 2 + (p.y - my) ** 2; if (d < bestD) { best = p; bestD = d; } }
    if (!best) { tip.style.display = "none"; return; }
    tip.textContent = best.run + (drawnColor ? " · " + drawnColor + "=" + best.key : "") + " · step " + best.step + ": " + show(best.value);
    tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px"; tip.style.display = "block";
  });
  svg.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  function draw() {
    svg.replaceChildren();
    drawn = [];
    drawnColor = colorSelect.value;
    const metric = metricSelect.value, logx = document.getElementById("logx").checked, logy = document.getElementById("logy").checked;
    const chosen = (ticked.size ? shown.filter(r => ticked.has(r[0])) : shown.slice(0, 20));
    const lines = [];
    for (const row of chosen) {
      const points = ((series[row[0]] || {})[metric] || []).filter(p => p[1] !== null && (!logx || p[0] > 0) && (!logy || p[1] > 0));
      if (points.length) lines.push({row, points});
    }
    const W = +svg.getAttribute("width"), H = +svg.getAttribute("height"), L = 70, R = 200, T = 20, B = 40;
    if (!lines.length) { svg.appendChild(el("svg:text", {x: L, y: H / 2}, "no values of " + metric + " in the shown runs")); return; }
    const xs = lines.flatMap(l => l.points.map(p => p[0])), ys = lines.flatMap(l => l.points.map(p => p[1]));
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const sx = scale(x0, x1, L, W - R, logx), sy = scale(y0, y1, H - B, T, logy);
    svg.appendChild(el("svg:rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", stroke: "#999"}));
    for (const t of ticks(x0, x1, logx)) {
      svg.appendChild(el("svg:line", {x1: sx(t), x2: sx(t), y1: H - B, y2: H - B + 5, stroke: "#555"}));
      svg.appendChild(el("svg:text", {x: sx(t), y: H - B + 18, "text-anchor": "middle", "font-size": 11}, show(t)));
    }
    for (const t of ticks(y0, y1, logy)) {
      svg.appendChild(el("svg:line", {x1: L - 5, x2: L, y1: sy(t), y2: sy(t), stroke: "#555"}));
      svg.appendChild(el("svg:text", {x: L - 8, y: sy(t) + 4, "text-anchor": "end", "font-size": 11}, show(t)));
    }
    svg.appendChild(el("svg:text", {x: (L + W - R) / 2, y: H - 5, "text-anchor": "middle"}, "step"));
    svg.appendChild(el("svg:text", {x: 14, y: (T + H - B) / 2, transform: `rotate(-90 14 ${(T + H - B) / 2})`, "text-anchor": "middle"}, metric));
    const colorBy = colorSelect.value, index = colorBy ? columns.indexOf(colorBy) : 0;
    const keys = [...new Set(lines.map(l => show(l.row[index])))].sort((a, b) => compare(isNaN(+a) ? a : +a, isNaN(+b) ? b : +b));
    const colorOf = key => palette[keys.indexOf(key) % palette.length];
    for (const line of lines) {
      const key = show(line.row[index]);
      const d = line.points.map((p, i) => (i ? "L" : "M") + sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join("");
      const path = el("svg:path", {d, fill: "none", stroke: colorOf(key), "stroke-width": 1.5, "data-run": String(line.row[0])});
      for (const p of line.points) drawn.push({x: sx(p[0]), y: sy(p[1]), step: p[0], value: p[1], run: String(line.row[0]), key});
      svg.appendChild(path);
    }
    keys.slice(0, 18).forEach((key, i) => {
      svg.appendChild(el("svg:rect", {x: W - R + 12, y: T + 4 + i * 18, width: 12, height: 4, fill: colorOf(key)}));
      svg.appendChild(el("svg:text", {x: W - R + 30, y: T + 10 + i * 18, "font-size": 11}, (colorBy || "run") + " " + key));
    });
    if (keys.length > 18) svg.appendChild(el("svg:text", {x: W - R + 12, y: T + 10 + 18 * 18, "font-size": 11}, "+" + (keys.length - 18) + " more"));
  }
  render();
})();
