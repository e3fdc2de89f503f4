// The wherever dashboard: plain DOM and SVG, fed by server-sent events from
// /api/stream. Text from the server goes in through textContent only.
"use strict";

const WINDOW = 5000;
const runs = [];
const SVG_NS = "http://www.w3.org/2000/svg";

function showSections() {
  const path = window.location.pathname;
  for (const section of document.querySelectorAll("section[data-page]")) {
    section.hidden = path !== "/" && section.dataset.page !== path;
  }
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = String(text);
  row.appendChild(td);
  return td;
}

function bar(counts) {
  const total = counts.queued + counts.running + counts.done + counts.failed;
  const outer = document.createElement("div");
  outer.className = "bar";
  const done = document.createElement("span");
  done.className = "done";
  done.style.width = total ? (100 * counts.done / total) + "%" : "0";
  const failed = document.createElement("span");
  failed.className = "failed";
  failed.style.left = done.style.width;
  failed.style.width = total ? (100 * counts.failed / total) + "%" : "0";
  outer.append(done, failed);
  return outer;
}

function renderProgress(progress) {
  const body = document.getElementById("progress-rows");
  body.replaceChildren();
  for (const counts of progress.names) {
    const row = document.createElement("tr");
    row.dataset.name = counts.name;
    cell(row, counts.name);
    cell(row, counts.queued).className = "queued";
    cell(row, counts.running).className = "running";
    cell(row, counts.done).className = "done";
    cell(row, counts.failed).className = "failed";
    cell(row, "").appendChild(bar(counts));
    body.appendChild(row);
  }
  for (const field of ["queued", "running", "done", "failed"]) {
    document.getElementById("total-" + field).textContent = String(progress.total[field]);
  }
  const dropped = document.getElementById("dropped");
  dropped.hidden = progress.dropped_events === 0;
  dropped.textContent = progress.dropped_events + " events were lost: counts may lag";
}

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) { n /= 1024; unit += 1; }
  return n.toFixed(unit ? 1 : 0) + " " + units[unit];
}

// Resident memory, and the limit when known ("12.0 MiB of 1.9 GiB").
function memory(w) {
  const rss = bytes(w.rss_bytes);
  if (!w.memory_limits) return rss;
  return (rss || "?") + " of " + bytes(w.memory_limits.limit);
}

// The spill, pause and terminate thresholds, for the memory cell's tooltip.
function thresholds(limits) {
  if (!limits) return "";
  const at = (n) => (n === null ? "off" : bytes(n));
  return "spills past " + at(limits.target) + ", pauses past " + at(limits.pause) +
    ", restarts past " + at(limits.terminate);
}

function renderWorkers(workers) {
  const body = document.getElementById("worker-rows");
  body.replaceChildren();
  for (const w of workers.workers) {
    const row = document.createElement("tr");
    row.dataset.worker = w.worker;
    cell(row, w.worker);
    cell(row, w.host);
    cell(row, w.slots || "");
    cell(row, w.running);
    cell(row, w.finished);
    cell(row, memory(w)).title = thresholds(w.memory_limits);
    cell(row, w.cpu_percent == null ? "" : w.cpu_percent + "%");
    cell(row, (w.last_seen_ms / 1000).toFixed(1) + " s");
    cell(row, w.left === null ? "up" : "left: " + w.left);
    body.appendChild(row);
  }
}

function colour(name) {
  let hash = 0;
  for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) | 0;
  return "hsl(" + (Math.abs(hash) % 360) + ", 55%, 55%)";
}

function renderStream(tasks) {
  for (const run of tasks.runs) runs.push(run);
  if (runs.length > WINDOW) runs.splice(0, runs.length - WINDOW);
  const workers = [...new Set(runs.map((run) => run.worker))].sort();
  const legend = document.getElementById("stream-workers");
  legend.replaceChildren();
  for (const worker of workers) {
    const item = document.createElement("li");
    item.dataset.worker = worker;
    item.textContent = worker + ": " + runs.filter((run) => run.worker === worker).length + " runs";
    legend.appendChild(item);
  }
  const svg = document.getElementById("stream-svg");
  svg.replaceChildren();
  if (runs.length === 0) return;
  const rowHeight = 20;
  const width = Number(svg.getAttribute("width"));
  svg.setAttribute("height", String(Math.max(1, workers.length) * rowHeight + 4));
  let start = Infinity;
  let end = 0;
  for (const run of runs) { start = Math.min(start, run.start_us); end = Math.max(end, run.end_us); }
  const scale = width / Math.max(1, end - start);
  for (const run of runs) {
    const rect = document.createElementNS(SVG_NS, "rect");
    rect.setAttribute("x", String((run.start_us - start) * scale));
    rect.setAttribute("y", String(workers.indexOf(run.worker) * rowHeight + 2));
    rect.setAttribute("width", String(Math.max(1, (run.end_us - run.start_us) * scale)));
    rect.setAttribute("height", String(rowHeight - 4));
    rect.setAttribute("fill", run.failed ? "#c44" : colour(run.name));
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = run.name + " on " + run.worker + ", " + ((run.end_us - run.start_us) / 1000).toFixed(2) + " ms";
    rect.appendChild(title);
    svg.appendChild(rect);
  }
}

const STATE_COLOURS = { queued: "#bbb", running: "#e9b63b", done: "#4a9d5b", failed: "#c44" };

function renderGraph(graph) {
  const svg = document.getElementById("graph-svg");
  svg.replaceChildren();
  document.getElementById("graph-empty").hidden = graph.nodes.length > 0;
  if (graph.nodes.length === 0) return;
  const layers = Math.max(...graph.nodes.map((n) => n.layer)) + 1;
  const widest = Math.max(...graph.nodes.map((n) => n.slot)) + 1;
  const dx = Math.max(14, Math.min(80, 880 / widest));
  const dy = 50;
  svg.setAttribute("width", String(Math.max(900, widest * dx + 20)));
  svg.setAttribute("height", String(layers * dy + 10));
  const at = new Map();
  for (const n of graph.nodes) at.set(n.task, [10 + dx / 2 + n.slot * dx, 20 + n.layer * dy]);
  for (const n of graph.nodes) {
    for (const dep of n.deps) {
      if (!at.has(dep)) continue;
      const line = document.createElementNS(SVG_NS, "line");
      const [x1, y1] = at.get(dep);
      const [x2, y2] = at.get(n.task);
      line.setAttribute("x1", String(x1)); line.setAttribute("y1", String(y1));
      line.setAttribute("x2", String(x2)); line.setAttribute("y2", String(y2));
      line.setAttribute("stroke", "#999");
      svg.appendChild(line);
    }
  }
  for (const n of graph.nodes) {
    const [x, y] = at.get(n.task);
    const circle = document.createElementNS(SVG_NS, "circle");
    circle.setAttribute("cx", String(x)); circle.setAttribute("cy", String(y));
    circle.setAttribute("r", String(Math.min(10, dx / 3)));
    circle.setAttribute("fill", STATE_COLOURS[n.state] || "#bbb");
    circle.dataset.state = n.state;
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = n.name + " (task " + n.task + "): " + n.state;
    circle.appendChild(title);
    svg.appendChild(circle);
  }
}

function connect() {
  const status = document.getElementById("status");
  const source = new EventSource("/api/stream");
  source.onopen = () => { status.textContent = "live"; };
  source.onerror = () => { status.textContent = "disconnected: retrying"; };
  source.addEventListener("update", (message) => {
    const update = JSON.parse(message.data);
    renderProgress(update.progress);
    renderWorkers(update.workers);
    renderStream(update.tasks);
    renderGraph(update.graph);
  });
}

showSections();
connect();
