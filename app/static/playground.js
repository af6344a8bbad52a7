// namegen playground: every endpoint of the API from a browser. Plain JavaScript, no build step.
//
// Nothing about models or fields is written here: the models and their conditions come from
// GET /models, the /generate fields and their limits from /openapi.json (GenerateRequest), so a
// model added to the models folder, or a field the API gains, shows up by itself. Requests use
// relative URLs, so the page works behind a proxy that serves the service under a path prefix.
// The controls are mirrored in the page's query string under the API's own field names: a copied
// link, or the "Copy as curl" command (GET /generate with the same query), gives the same names.
"use strict";

const state = {
  models: [],        // GET /models data
  limits: {},        // GET /models limits
  fields: {},        // GenerateRequest properties from /openapi.json
  current: null,     // the selected model's info
  sort: { key: null, dir: 1 },
  scores: [],
  ncTimer: null,
  ncSeq: 0,
};

const GENERATE_SKIP = new Set(["model", "sex", "year", "country"]);  // the model picker and the condition controls
const $ = (id) => document.getElementById(id);

// -- talking to the API --------------------------------------------------------------------------

class ApiError extends Error {}

function describeError(detail) {
  // the API's own message: a string, or a list of {loc, msg} naming each field
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => {
      const field = (e.loc || []).filter((p) => p !== "query" && p !== "body").join(".");
      return field ? `${field}: ${e.msg}` : e.msg;
    }).join("; ");
  }
  return JSON.stringify(detail);
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);  // relative: works under any path prefix
  } catch (err) {
    throw new ApiError(`The service cannot be reached (${err.message}). Is it running?`);
  }
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const why = body && body.detail !== undefined ? describeError(body.detail) : response.statusText;
    throw new ApiError(`${response.status}: ${why}`);
  }
  return body;
}

function postJson(path, payload) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
}

function setStatus(id, text, isError = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// -- controls ------------------------------------------------------------------------------------

function schemaOf(prop) {
  // a property's own schema: the non-null branch of anyOf [T, null]
  if (prop.anyOf) {
    const branch = prop.anyOf.find((b) => b.type !== "null") || {};
    return { ...branch, nullable: true, description: prop.description, default: prop.default };
  }
  return prop;
}

function makeField(name, prop, limit) {
  const s = schemaOf(prop);
  const wrap = document.createElement("div");
  const id = `f-${name}`;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = name;
  let input;
  if (s.type === "boolean") {
    wrap.className = "field check";
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = s.default === true;
    wrap.append(input, label);
  } else {
    wrap.className = "field";
    input = document.createElement("input");
    if (s.type === "integer" || s.type === "number") {
      input.type = "number";
      input.inputMode = s.type === "integer" ? "numeric" : "decimal";
      input.step = s.type === "integer" ? "1" : "any";
      const min = s.minimum !== undefined ? s.minimum : s.exclusiveMinimum;
      if (min !== undefined) input.min = String(min);
      const max = limit !== undefined ? limit : s.maximum;
      if (max !== undefined && max < 1e15) input.max = String(max);
    } else {
      input.type = "text";
      input.autocomplete = "off";
      input.spellcheck = false;
      const max = limit !== undefined ? limit : s.maxLength;
      if (max !== undefined) input.maxLength = max;
    }
    if (s.default !== undefined && s.default !== null && s.default !== "") input.value = String(s.default);
    input.placeholder = s.default === undefined || s.default === null ? "none" : String(s.default);
    wrap.append(label, input);
  }
  input.id = id;
  input.name = name;
  input.dataset.field = name;
  input.dataset.kind = s.type;
  if (s.description) {
    input.title = s.description;
    input.setAttribute("aria-description", s.description);
  }
  return wrap;
}

function buildGenerateFields() {
  const box = $("generate-fields");
  box.replaceChildren();
  const limits = { n: state.limits.max_n, prefix: state.limits.max_prefix_length };
  for (const [name, prop] of Object.entries(state.fields)) {
    if (!GENERATE_SKIP.has(name)) box.append(makeField(name, prop, limits[name]));
  }
}

function buildConditionFields() {
  // for a model that declares conditions: a control per request field it takes
  const box = $("condition-fields");
  const keep = {};
  for (const el of box.querySelectorAll("[data-field]")) keep[el.dataset.field] = el.value;
  box.replaceChildren();
  const fields = (state.current && state.current.conditions && state.current.conditions.fields) || {};
  for (const [name, spec] of Object.entries(fields)) {
    const wrap = document.createElement("div");
    wrap.className = "field";
    const label = document.createElement("label");
    label.htmlFor = `c-${name}`;
    label.textContent = name;
    let input;
    if (spec.values) {
      input = document.createElement("select");
      // the declared values, then any that pairs two of them (sex: neutral)
      const values = [...spec.values, ...Object.keys(spec.pairs || {})];
      input.append(new Option("any", ""), ...values.map((v) => new Option(v, v)));
    } else {
      input = document.createElement("input");
      input.type = "number";
      input.step = "1";
      input.min = String(spec.min);
      input.max = String(spec.max);
      input.placeholder = "any";
    }
    input.id = `c-${name}`;
    input.name = name;
    input.dataset.field = name;
    input.dataset.kind = spec.values ? "string" : "integer";
    input.title = state.current.conditions.absent || "";
    if (keep[name] !== undefined) input.value = keep[name];
    input.addEventListener("change", () => { syncUrl(); nextChar(); });
    wrap.append(label, input);
    box.append(wrap);
  }
}

function conditionParams() {
  const out = {};
  for (const el of $("condition-fields").querySelectorAll("[data-field]")) {
    if (el.value !== "") out[el.dataset.field] = el.dataset.kind === "integer" ? Number(el.value) : el.value;
  }
  return out;
}

function generateParams() {
  // the /generate fields that differ from their defaults, as the API names them
  const params = { model: $("model").value, ...conditionParams() };
  for (const el of $("generate-fields").querySelectorAll("[data-field]")) {
    const s = schemaOf(state.fields[el.dataset.field]);
    if (el.type === "checkbox") {
      if (el.checked !== (s.default === true)) params[el.dataset.field] = el.checked;
    } else if (el.value !== "" && el.value !== String(s.default === undefined ? "" : s.default)) {
      params[el.dataset.field] = el.dataset.kind === "string" ? el.value : Number(el.value);
    }
  }
  return params;
}

function queryOf(params) {
  return new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString();
}

function syncUrl() {
  const query = queryOf(generateParams());
  history.replaceState(null, "", `${location.pathname}?${query}`);
  $("curl").textContent = curlCommand();
}

function applyUrl(query) {
  // set the controls from a permalink; returns whether it named any request field
  let any = false;
  for (const [name, value] of query.entries()) {
    if (name === "model") {
      if ([...$("model").options].some((o) => o.value === value)) $("model").value = value;
      any = true;
      continue;
    }
    const el = document.querySelector(`[data-field="${CSS.escape(name)}"]`);
    if (!el) continue;
    any = true;
    if (el.type === "checkbox") el.checked = value === "true";
    else el.value = value;
  }
  return any;
}

function curlCommand() {
  const base = new URL("generate", location.href);
  base.search = queryOf(generateParams());
  return `curl -s '${base.href.replace(/'/g, "%27")}'`;
}

// -- models --------------------------------------------------------------------------------------

function showModel() {
  state.current = state.models.find((m) => m.name === $("model").value) || state.models[0];
  const m = state.current;
  const about = $("model-about");
  about.replaceChildren();
  const rows = [
    ["description", m.description],
    ["corpus", `${m.corpus.source} (${m.corpus.items.toLocaleString("en")} items, ${m.corpus.licence})`],
    ["parameters", m.parameters.toLocaleString("en")],
    ["test loss", `${m.metrics.test_loss.toFixed(4)} nats/char on held-out names`],
    ["alphabet", m.alphabet],
  ];
  if (m.conditions) rows.push(["conditions", Object.keys(m.conditions.fields).join(", ")]);
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    about.append(dt, dd);
  }
  buildConditionFields();
  const prefix = $("f-prefix");
  if (prefix) prefix.pattern = `[${m.alphabet}${m.alphabet.toUpperCase()}]*`;
}

// -- generate ------------------------------------------------------------------------------------

async function generate() {
  const params = generateParams();
  syncUrl();
  setStatus("generate-status", "Generating...");
  let data;
  try {
    data = await api(`generate?${queryOf(params)}`);
  } catch (err) {
    setStatus("generate-status", err.message, true);
    $("names").replaceChildren();
    return;
  }
  const list = $("names");
  list.replaceChildren();
  const items = data.names.map((name) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "name";
    button.dir = "auto";  // a Hebrew name reads right to left
    button.textContent = name;
    button.addEventListener("click", () => copy(name, "generate-status"));
    const meta = document.createElement("span");
    meta.className = "meta";
    li.append(button, meta);
    list.append(li);
    return meta;
  });
  let text = `${data.count} of ${data.requested} names, seed ${data.seed}`;
  if (data.note) text += `. ${data.note}`;
  setStatus("generate-status", text);
  if (!data.names.length) return;
  const real = (s) => (s.in_corpus ? "real" : "new");
  try {  // how name-like each is, and whether it is a real one; for full names, each part
    if (data.full_names) {
      const [given, family] = await Promise.all([
        postJson("score", { model: data.model, names: data.full_names.map((f) => f.given), ...conditionParams() }),
        postJson("score", { model: data.family_model, names: data.full_names.map((f) => f.family) }),
      ]);
      given.scores.forEach((g, i) => {
        const f = family.scores[i];
        items[i].textContent = `${g.nats_per_char.toFixed(2)} + ${f.nats_per_char.toFixed(2)} nats/char · ${real(g)} + ${real(f)}`;
      });
    } else {
      const scored = await postJson("score", { model: data.model, names: data.names, ...conditionParams() });
      scored.scores.forEach((s, i) => {
        items[i].textContent = `${s.nats_per_char.toFixed(2)} nats/char${s.in_corpus ? " · in corpus" : " · new"}`;
      });
    }
  } catch (err) {
    setStatus("generate-status", `${text}. Scores unavailable: ${err.message}`, true);
  }
}

async function copy(text, statusId) {
  try {
    await navigator.clipboard.writeText(text);
    setStatus(statusId, `Copied: ${text}`);
  } catch (_) {
    setStatus(statusId, `Copy it by hand: ${text}`);
  }
}

// -- next character ------------------------------------------------------------------------------

function scheduleNextChar() {
  clearTimeout(state.ncTimer);
  state.ncTimer = setTimeout(nextChar, 120);
}

async function nextChar() {
  const seq = ++state.ncSeq;  // answers to older keystrokes are dropped
  const prefix = $("nc-prefix").value;
  const query = queryOf({ model: $("model").value, prefix, ...conditionParams() });
  let data;
  try {
    data = await api(`next-char?${query}`);
  } catch (err) {
    if (seq === state.ncSeq) setStatus("nc-status", err.message, true);
    return;
  }
  if (seq !== state.ncSeq) return;
  setStatus("nc-status", prefix ? `After "${data.prefix}":` : "First character:");
  drawChart(data.distribution);
  document.dispatchEvent(new CustomEvent("chart-drawn", { detail: { prefix: data.prefix } }));
}

function drawChart(distribution) {
  const chart = $("chart");
  const rows = $("nc-table").tBodies[0];
  chart.replaceChildren();
  rows.replaceChildren();
  const top = distribution.length ? distribution[0].prob : 1;
  for (const { char, prob } of distribution) {
    const isEnd = char === "<end>";
    const percent = `${(prob * 100).toFixed(1)}%`;
    const bar = document.createElement("button");
    bar.type = "button";
    bar.className = isEnd ? "bar end" : "bar";
    bar.dataset.char = char;
    bar.dataset.prob = String(prob);
    bar.setAttribute("aria-label", `${isEnd ? "end of the name" : char}: ${percent}`);
    const label = document.createElement("span");
    label.className = "char";
    label.textContent = isEnd ? "end" : char;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${top > 0 ? (100 * prob) / top : 0}%`;  // CSSOM: allowed under the page's CSP
    track.append(fill);
    const value = document.createElement("span");
    value.className = "prob";
    value.textContent = percent;
    bar.append(label, track, value);
    bar.addEventListener("click", () => {
      if (isEnd) {
        setStatus("nc-status", `The model would end the name here: ${$("nc-prefix").value}`);
        return;
      }
      $("nc-prefix").value += char;
      nextChar();
    });
    chart.append(bar);
    const tr = document.createElement("tr");
    for (const text of [isEnd ? "end of the name" : char, percent]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    rows.append(tr);
  }
}

// -- score ---------------------------------------------------------------------------------------

async function score() {
  const names = $("score-names").value.split("\n").map((s) => s.trim()).filter(Boolean);
  if (!names.length) {
    setStatus("score-status", "Enter at least one name.", true);
    return;
  }
  try {
    const data = await postJson("score", { model: $("model").value, names, ...conditionParams() });
    state.scores = data.scores;
    setStatus("score-status", `${data.scores.length} names scored by ${data.model}`);
    drawScores();
  } catch (err) {
    setStatus("score-status", err.message, true);
  }
}

function drawScores() {
  const { key, dir } = state.sort;
  const rows = [...state.scores];
  if (key) rows.sort((a, b) => (a[key] < b[key] ? -dir : a[key] > b[key] ? dir : 0));
  const body = $("score-table").tBodies[0];
  body.replaceChildren();
  for (const s of rows) {
    const tr = document.createElement("tr");
    const cells = [s.name, s.logprob.toFixed(3), s.nats_per_char.toFixed(3), s.perplexity.toFixed(2), s.in_corpus ? "yes" : "no"];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === 0) td.dir = "auto";
      if (i >= 1 && i <= 3) td.className = "num";
      tr.append(td);
    });
    body.append(tr);
  }
  for (const th of $("score-table").tHead.rows[0].cells) {
    if (th.dataset.key === key) th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
}

// -- start ---------------------------------------------------------------------------------------

async function start() {
  let models, schema;
  try {
    [models, schema] = await Promise.all([api("models"), api("openapi.json")]);
  } catch (err) {
    const banner = $("service-status");
    banner.textContent = err.message;
    banner.hidden = false;
    return;
  }
  state.models = models.data;
  state.limits = models.limits;
  state.fields = schema.components.schemas.GenerateRequest.properties;
  const picker = $("model");
  picker.append(...state.models.map((m) => new Option(`${m.name}${m.default ? " (default)" : ""}`, m.name)));
  picker.value = models.default;
  buildGenerateFields();
  showModel();
  const query = new URLSearchParams(location.search);
  const fromLink = applyUrl(query);
  if (fromLink) showModel(), applyUrl(query);  // the model's condition controls exist only now
  $("curl").textContent = curlCommand();

  picker.addEventListener("change", () => { showModel(); syncUrl(); nextChar(); });
  $("generate-form").addEventListener("submit", (e) => { e.preventDefault(); generate(); });  // Enter too
  $("generate-form").addEventListener("change", syncUrl);
  $("generate-form").addEventListener("input", syncUrl);
  $("new-seed").addEventListener("click", () => {
    $("f-seed").value = String(Math.floor(Math.random() * 2 ** 32));
    syncUrl();
  });
  $("copy-curl").addEventListener("click", () => { syncUrl(); copy(curlCommand(), "generate-status"); });
  $("nc-prefix").addEventListener("input", scheduleNextChar);
  $("score-form").addEventListener("submit", (e) => { e.preventDefault(); score(); });
  for (const th of $("score-table").tHead.rows[0].cells) {
    th.querySelector("button").addEventListener("click", () => {
      state.sort = { key: th.dataset.key, dir: state.sort.key === th.dataset.key ? -state.sort.dir : 1 };
      drawScores();
    });
  }
  nextChar();
  if (fromLink) await generate();
  document.body.dataset.ready = "true";  // for tests: everything above has run
}

start();
