// jaxnst studio: the page. Plain JavaScript, no build step; uPlot draws the loss curve.
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = ["#3658d8", "#e8590c", "#2f9e44", "#c2255c", "#7048e8", "#0c8599", "#a0522d",
                "#5c940d", "#d6336c", "#495057", "#1971c2", "#f08c00", "#087f5b", "#862e9c",
                "#e03131", "#364fc7"];
const TERMINAL = ["finished", "stopped", "failed", "cancelled", "interrupted"];
const state = { schema: null, job: null, record: null, source: null, chart: null, data: null,
                labels: [] };

async function api(path, options = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

const fileUrl = (id, name, extra = "") => `/api/jobs/${id}/files/${name}${extra}`;
const pad3 = (i) => String(i).padStart(3, "0");
const fmtLoss = (v) => (v == null ? "–" : Number(v).toExponential(3));

// ------------------------------------------------------------------ the form
function buildPickers(schema) {
  for (const which of ["content", "style"]) {
    const select = $(`${which}-sample`), file = $(`${which}-file`), thumb = $(`${which}-thumb`);
    for (const name of schema.samples) select.append(el("option", { value: name, text: name }));
    const preferred = schema.sample_defaults[which];
    if (preferred) select.value = preferred;
    const show = () => {
      thumb.src = file.files.length ? URL.createObjectURL(file.files[0])
                                    : `/api/samples/${encodeURIComponent(select.value)}`;
    };
    select.addEventListener("change", show);
    file.addEventListener("change", show);
    show();
  }
}

function showDefault(v) {
  if (v == null) return "";
  return Array.isArray(v) ? v.join(" ") : String(v);
}

function buildFields(schema) {
  const box = $("fields");
  for (const f of schema.fields) {
    const id = `f-${f.name}`;
    let input;
    if (f.kind === "choice") {
      input = el("select", { id, name: f.name });
      for (const c of f.choices) input.append(el("option", { value: c, text: c }));
      input.value = f.default;
    } else {
      input = el("input", { id, name: f.name, type: "text", spellcheck: "false",
                            inputmode: f.kind.startsWith("integer") ? "numeric" : "decimal" });
      input.value = showDefault(f.default);
      if (f.default == null) input.placeholder = f.name === "chunk" ? "auto" : "none";
      if (f.sweep) input.placeholder = "one value, or several: a sweep";
    }
    input.title = f.help;
    box.append(el("div", { class: "field" + (f.sweep ? " sweep" : "") },
                  el("label", { for: id, text: f.label, title: f.help }), input));
  }
}

async function start(event) {
  event.preventDefault();
  $("form-error").textContent = "";
  $("start").disabled = true;
  try {
    const record = await api("/api/jobs", { method: "POST", body: new FormData($("job-form")) });
    watch(record.id);
    refreshHistory();
  } catch (e) {
    $("form-error").textContent = e.message;
  } finally {
    $("start").disabled = false;
  }
}

async function stop() {
  if (!state.job) return;
  $("stop").disabled = true;
  try { await api(`/api/jobs/${state.job}/stop`, { method: "POST" }); }
  catch (e) { $("form-error").textContent = e.message; }
}

// ------------------------------------------------------------------ instant presets
// Trained networks (jaxnst serve --models DIR) run in the request: the content above, at the
// form's size, through the chosen network.
async function setupPresets() {
  let listing;
  try { listing = await api("/api/models"); } catch (e) { return; }
  if (!listing.models.length) return;
  const models = Object.fromEntries(listing.models.map((m) => [m.name, m]));
  const pick = $("preset-model"), style = $("preset-style");
  const styles = () => {
    const m = models[pick.value];
    style.replaceChildren(...m.styles.map((s) => el("option", { value: s, text: s })));
    const [lo, hi] = m.strengths;
    $("preset-strength").disabled = lo === hi;
    $("preset-info").textContent = `${m.steps} training steps at ${m.size} px` +
      (lo === hi ? "" : `; strength ${lo}–${hi}`);
  };
  pick.replaceChildren(...listing.models.map((m) => el("option", { value: m.name, text: m.name })));
  pick.addEventListener("change", styles);
  styles();
  $("preset-go").addEventListener("click", instant);
  $("instant").hidden = false;
}

async function instant() {
  const job = new FormData($("job-form"));
  const body = new FormData();
  for (const k of ["content", "content_sample", "size"]) if (job.has(k)) body.append(k, job.get(k));
  body.append("model", $("preset-model").value);
  body.append("style", $("preset-style").value);
  if ($("preset-strength").value && !$("preset-strength").disabled)
    body.append("strength", $("preset-strength").value);
  $("preset-go").disabled = true;
  $("form-error").textContent = "";
  try {
    const r = await fetch("/api/instant", { method: "POST", body, credentials: "same-origin" });
    if (!r.ok) throw new Error(((await r.json().catch(() => null)) || {}).error || r.statusText);
    const img = $("preset-out");
    if (img.src) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(await r.blob());
    img.hidden = false;
    const ms = (1e3 * r.headers.get("X-Jaxnst-Seconds")).toFixed(0);
    $("preset-info").textContent = `network: ${ms} ms (the first image of a size also compiles)`;
  } catch (e) {
    $("form-error").textContent = e.message;
  } finally {
    $("preset-go").disabled = false;
  }
}

// ------------------------------------------------------------------ the run view
function setStatus(status, text) {
  const b = $("status");
  b.textContent = status; b.className = `badge ${status}`;
  if (text != null) $("progress-text").textContent = text;
  $("stop").disabled = !(status === "running" || status === "queued");
}

function setupPreviews(record) {
  const labels = record.members || [];
  const box = $("previews");
  const n = Math.max(1, labels.length);
  if (box.dataset.job === record.id && box.children.length === n) return;
  box.dataset.job = record.id;
  box.replaceChildren();
  box.classList.toggle("single", labels.length === 0);
  const cols = n <= 4 ? n : n <= 9 ? 3 : 4;
  box.style.gridTemplateColumns = labels.length ? `repeat(${cols}, minmax(0, 1fr))` : "";
  for (let i = 0; i < n; i++) {
    const img = el("img", { id: `preview-${i}`, alt: labels[i] || "current image",
                            src: fileUrl(record.id, "content.jpg") });
    const cap = el("figcaption", {}, el("span", { id: `member-label-${i}`,
                                                  text: labels[i] || "content image" }),
                   el("span", { id: `member-link-${i}` }));
    box.append(el("figure", {}, img, cap));
  }
}

function swapImage(img, url) {
  const next = new Image();
  next.onload = () => { img.src = url; img.dataset.version = (+img.dataset.version || 0) + 1; };
  next.src = url;
}

function makeChart(labels) {
  if (state.chart) state.chart.destroy();
  state.labels = labels;
  state.data = [[], ...labels.map(() => [])];
  const box = $("chart");
  state.chart = new uPlot({
    width: Math.max(300, box.clientWidth), height: 230,
    scales: { x: { time: false }, y: { distr: 3 } },
    axes: [{ label: "iteration" },
           { label: "loss (log scale)", size: 72,
             values: (u, vals) => vals.map((v) => (v == null ? "" : v.toExponential(0))) }],
    series: [{ label: "iteration" },
             ...labels.map((l, i) => ({ label: l, stroke: COLORS[i % COLORS.length], width: 2,
                                        points: { show: true, size: 5 } }))],
  }, state.data, box);
}

function addPoint(x, y) {
  if (!state.chart || y == null || y <= 0) return;
  const [xs, ys] = state.data;
  if (xs.length && x <= xs[xs.length - 1]) return;  // a replayed event
  xs.push(x); ys.push(y);
  state.chart.setData(state.data);
}

function plotHistory(report) {
  const members = report.members || null;
  const labels = members ? members.map((m) => m.label) : ["total loss"];
  makeChart(labels);
  const hist = members ? members.map((m) => m.history) : [report.history];
  state.data[0] = hist[0].step;
  hist.forEach((h, i) => { state.data[i + 1] = h.total.map((v) => (v > 0 ? v : null)); });
  state.chart.setData(state.data);
}

function watch(id) {
  if (state.source) state.source.close();
  state.job = id; state.record = null;
  $("downloads").replaceChildren();
  $("previews").dataset.job = "";
  document.querySelectorAll(".card").forEach((c) => c.classList.toggle("current",
                                                                       c.dataset.id === id));
  const es = new EventSource(`/api/jobs/${id}/events`);
  state.source = es;
  const on = (kind, fn) => es.addEventListener(kind, (e) => {
    if (state.job === id) fn(JSON.parse(e.data));
  });
  on("state", (r) => {
    const fresh = !state.record;
    state.record = r;
    setupPreviews(r);
    if (fresh) makeChart([r.members && r.members.length ? "total loss (batch mean)" : "total loss"]);
    setStatus(r.status, r.status === "queued" ? "waiting in the queue…" : null);
    if (r.status === "running" && r.step > 0) showPreviews(r.members.length || 1, r.step);
  });
  on("queued", (d) => setStatus("queued", `waiting in the queue (${d.position} ahead)…`));
  on("started", (d) => setStatus("running", `compiling ${d.size[0]}×${d.size[1]} px` +
                                 (d.members.length ? `, batch of ${d.members.length}` : "") + "…"));
  on("progress", (p) => {
    showPreviews((state.record.members || []).length || 1, p.preview);
    $("progress").value = p.step / p.iterations;
    setStatus("running", `iteration ${p.step} / ${p.iterations} · loss ${fmtLoss(p.loss)} · ` +
                         `${p.elapsed.toFixed(1)} s`);
    addPoint(p.step, p.loss);
    if (!(state.record.members || []).length) {
      $("member-label-0").textContent = `iteration ${p.step}`;
    }
  });
  on("done", (d) => { es.close(); finish(id, d); });
}

function showPreviews(n, version) {
  for (let i = 0; i < n; i++) {
    const img = $(`preview-${i}`);
    if (img) swapImage(img, fileUrl(state.job, `preview_${pad3(i)}.jpg`, `?v=${version}`));
  }
}

async function finish(id, d) {
  const r = state.record || {};
  const files = d.files || {};
  const what = { finished: "done", stopped: d.message, failed: d.message,
                 cancelled: d.message, interrupted: d.message }[d.status];
  const secs = d.started && d.finished ? ` · ${(d.finished - d.started).toFixed(1)} s` : "";
  setStatus(d.status, `${what || d.status}` + (d.step ? ` · ${d.step} iterations` : "") + secs);
  if (d.status !== "failed") $("progress").value = d.status === "finished" ? 1 : $("progress").value;
  const links = $("downloads");
  links.replaceChildren();
  if (files.image) {
    const members = files.members || [];
    if (members.length) {
      members.forEach((name, i) => {
        const img = $(`preview-${i}`);
        if (img) swapImage(img, fileUrl(id, name));
        const slot = $(`member-link-${i}`);
        if (slot) slot.replaceChildren(el("a", { href: fileUrl(id, name, "?download=1"),
                                                 text: "PNG" }));
      });
    } else if ($("preview-0")) {
      swapImage($("preview-0"), fileUrl(id, files.image));
      $("member-label-0").textContent = `result after ${d.step} iterations`;
    }
    links.append(el("a", { id: "download-image", href: fileUrl(id, files.image, "?download=1"),
                           text: members.length ? "Download contact sheet (PNG)"
                                                : "Download image (PNG)" }),
                 el("a", { id: "download-report", href: fileUrl(id, files.report, "?download=1"),
                           text: "Download report (JSON)" }));
    try { plotHistory(await api(fileUrl(id, files.report))); } catch (e) { /* keep live curve */ }
  } else if (r.step > 0) {
    showPreviews((r.members || []).length || 1, r.step);  // interrupted: its last preview
  }
  refreshHistory();
  health();
}

function fillForm(record) {
  // The options of an earlier run, to run it again or vary it (the images: when they were samples).
  for (const [name, value] of Object.entries(record.form || {})) {
    const input = $(`f-${name}`);
    if (input) input.value = value;
  }
  for (const which of ["content", "style"]) {
    const select = $(`${which}-sample`), name = (record.inputs || {})[which];
    if ([...select.options].some((o) => o.value === name)) {
      select.value = name;
      $(`${which}-file`).value = "";
      select.dispatchEvent(new Event("change"));
    }
  }
}

// ------------------------------------------------------------------ history and health
async function refreshHistory() {
  let jobs;
  try { jobs = (await api("/api/jobs")).jobs; } catch (e) { return; }
  const box = $("history");
  box.replaceChildren(...jobs.map((j) => {
    const thumb = j.files && j.files.image ? "thumb.jpg" : "content.jpg";
    const when = new Date(j.created * 1000).toLocaleString();
    const sweep = j.members && j.members.length ? ` · sweep of ${j.members.length}` : "";
    const card = el("button", { class: "card" + (j.id === state.job ? " current" : ""),
                                type: "button", "data-id": j.id },
      el("img", { class: "thumb", alt: "", loading: "lazy", src: fileUrl(j.id, thumb) }),
      el("span", { class: "meta" },
         el("span", {}, el("span", { class: `badge ${j.status}`, text: j.status })),
         el("span", { text: `${j.size[0]}×${j.size[1]} · ${j.step}/${j.iterations} it${sweep}` }),
         el("span", { text: `${j.inputs.content} + ${j.inputs.style}` }),
         el("span", { class: "when", text: when })));
    card.addEventListener("click", () => { fillForm(j); watch(j.id); });
    return card;
  }));
  if (!jobs.length) box.append(el("p", { class: "hint", text: "No runs yet in this folder." }));
  return jobs;
}

async function health() {
  const h = $("health");
  try {
    const s = await api("/api/health");
    h.textContent = s.running ? `running 1 job · ${s.queued} waiting` : `idle · ${s.queued} waiting`;
    h.classList.remove("down");
  } catch (e) {
    h.textContent = "server unreachable"; h.classList.add("down");
  }
}

async function init() {
  try {
    state.schema = await api("/api/options");
  } catch (e) {
    $("form-error").textContent = `cannot load the form: ${e.message}`;
    return;
  }
  buildPickers(state.schema);
  buildFields(state.schema);
  setupPresets();
  $("job-form").addEventListener("submit", start);
  $("stop").addEventListener("click", stop);
  window.addEventListener("resize", () => {
    if (state.chart) state.chart.setSize({ width: Math.max(300, $("chart").clientWidth),
                                           height: 230 });
  });
  const jobs = (await refreshHistory()) || [];
  const active = jobs.find((j) => !TERMINAL.includes(j.status));
  if (active || jobs.length) watch((active || jobs[0]).id);
  health();
  setInterval(health, 5000);
}

init();
