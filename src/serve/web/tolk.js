// tolk's translation page: plain JavaScript against the server's own API (/languages,
// /frontend/settings, /detect, /v1/translate, and LibreTranslate's /translate_file for files). Relative URLs, so the page works under any
// --url-prefix. Nothing is loaded from another host.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  languages: [],      // [{code, name, targets}]
  charLimit: -1,
  keyRequired: false,
  record: null,       // the last --format json record
  pending: null,      // AbortController of the request in flight
  timer: null,
  fileFormats: [],    // [".docx", ...] when the server translates files
};

function apiKey() {
  return state.keyRequired ? ($("api-key").value || "").trim() : undefined;
}

function status(message, isError) {
  const s = $("status");
  s.textContent = message || "";
  s.classList.toggle("error", Boolean(isError));
}

// A readable message for a failed answer.
async function failure(response) {
  let detail = "";
  try { detail = (await response.json()).error || ""; } catch (e) { /* not JSON */ }
  return explain(response.status, detail, response.headers.get("Retry-After"));
}

function explain(code, detail, retry) {
  const later = retry ? ` Try again in ${retry} s.` : "";
  switch (code) {
    case 400: return detail || "The server could not read this request.";
    case 403: return detail && !/API key/i.test(detail) ? detail : "The API key was not accepted.";
    case 413: return detail || "This is larger than the server takes.";
    case 429: return `Too many requests from you.${later}`;
    case 503: return `${detail || "The server is busy."}${later}`;
    default: return `The server answered ${code}${detail ? ": " + detail : ""}.`;
  }
}

async function call(path, body, signal) {
  const options = body === undefined
    ? { signal }
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal };
  const response = await fetch(path, options);
  if (!response.ok) {
    const error = new Error(await failure(response));
    error.retryAfter = Number(response.headers.get("Retry-After")) || 0;
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function nameOf(code) {
  const l = state.languages.find((x) => x.code === code);
  return l ? l.name : code;
}

// Sources: the languages a model translates from; targets: what the chosen source reaches.
function fillLanguages() {
  const source = $("source");
  const keep = source.value;
  for (const l of state.languages) {
    if (l.targets.some((t) => t !== l.code) && ![...source.options].some((o) => o.value === l.code)) {
      source.add(new Option(l.name, l.code));
    }
  }
  source.value = [...source.options].some((o) => o.value === keep) ? keep : "auto";
  fillTargets();
}

function fillTargets() {
  const target = $("target");
  const keep = target.value;
  const from = $("source").value;
  const reachable = new Set();
  for (const l of state.languages) {
    if (from === "auto" || l.code === from) {
      l.targets.filter((t) => t !== l.code).forEach((t) => reachable.add(t));
    }
  }
  target.replaceChildren(...[...reachable].map((c) => new Option(nameOf(c), c)));
  if (reachable.has(keep)) target.value = keep;
  updateSwap();
}

function updateSwap() {
  const from = $("source").value;
  const to = $("target").value;
  const back = state.languages.find((l) => l.code === to);
  $("swap").disabled = from === "auto" || !back || !back.targets.includes(from) || from === to;
}

function count() {
  const n = [...$("text").value].length;
  const limit = state.charLimit;
  const c = $("count");
  c.textContent = limit > 0 ? `${n} / ${limit}` : `${n} characters`;
  c.classList.toggle("over", limit > 0 && n > limit);
  return limit <= 0 || n <= limit;
}

// The article's structure: paragraphs, headlines and list items, one element per sentence.
function render(container, sentences, pick) {
  container.replaceChildren();
  let block = null;
  let paragraph = -1;
  let kind = "";
  for (const s of sentences) {
    const text = pick(s);
    if (text === null || text === undefined) continue;
    const type = s.type;
    if (type === "metadata") {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = `${s.key}: ${s.value}`;
      container.append(p);
      block = null;
      continue;
    }
    const opens = s.paragraph !== paragraph || type !== kind || type === "headline" || (type === "list_item" && !s.continues);
    if (opens && !(type === "list_item" && kind === "list_item" && s.paragraph === paragraph)) {
      block = document.createElement(type === "headline" ? "h3" : type === "list_item" ? "ul" : "p");
      container.append(block);
    }
    let target = block;
    if (type === "list_item") {
      if (!s.continues || !block.lastElementChild) {
        const li = document.createElement("li");
        block.append(li);
      }
      target = block.lastElementChild;
    }
    // Sentences apart by a space, except after a script written without spaces (。).
    const before = target.textContent;
    if (before && !/[\u3000-\u303f\u3040-\u30ff\u3400-\u9fff\uff00-\uffef]$/.test(before)) target.append(" ");
    const span = document.createElement("span");
    span.className = "s";
    span.tabIndex = 0;
    span.dataset.i = s.index;
    span.textContent = text;
    target.append(span);
    paragraph = s.paragraph;
    kind = type;
  }
}

function highlight(index, on) {
  document.querySelectorAll(`.s[data-i="${index}"]`).forEach((e) => e.classList.toggle("hl", on));
}

function showRecord(record, viewSource) {
  state.record = record;
  const sentences = record.sentences || [];
  render($("output"), sentences, (s) => s.translation);
  render($("source-view"), sentences, (s) => (s.type === "metadata" ? null : s.source));
  const summary = $("summary");
  summary.replaceChildren();
  const items = (record.summary && record.summary.sentences) || [];
  if (items.length) {
    const h = document.createElement("h3");
    h.textContent = "Summary";
    const ul = document.createElement("ul");
    for (const item of items) {
      const li = document.createElement("li");
      li.textContent = item.text;
      ul.append(li);
    }
    summary.append(h, ul);
  }
  summary.hidden = !items.length || !$("show-summary").checked;
  $("copy").disabled = !record.translation;
  if (viewSource) showSource(true);
}

// The source as text to edit, or as sentences to point at.
function showSource(asView) {
  $("text").hidden = asView;
  $("source-view").hidden = !asView;
  $("edit").hidden = !asView;
  if (!asView) $("text").focus();
}

async function translate(viewSource) {
  const text = $("text").value;
  if (!text.trim()) {
    $("output").replaceChildren();
    $("summary").hidden = true;
    $("copy").disabled = true;
    status("");
    return;
  }
  if (!count()) {
    status(`The text is longer than this server takes (${state.charLimit} characters).`, true);
    return;
  }
  if (state.pending) state.pending.abort();
  const controller = new AbortController();
  state.pending = controller;
  $("output").setAttribute("aria-busy", "true");
  status("Translating…");
  try {
    let source = $("source").value;
    if (source === "auto") {
      const found = await call("detect", { q: text, api_key: apiKey() }, controller.signal);
      const known = found.find((c) => state.languages.some((l) => l.code === c.language && l.targets.some((t) => t !== l.code)));
      if (!known) throw new Error("The language of this text is not one this server translates.");
      source = known.language;
      $("detected").textContent = `Detected: ${nameOf(source)} (${Math.round(known.confidence)}%)`;
    } else {
      $("detected").textContent = "";
    }
    const record = await call("v1/translate", {
      text, source, target: $("target").value, format: "json", summary: true, api_key: apiKey(),
    }, controller.signal);
    if (state.pending !== controller) return;
    showRecord(record, viewSource);
    status("");
  } catch (e) {
    if (e.name === "AbortError") return;
    status(e instanceof TypeError ? "Cannot reach the server. Is it still running?" : e.message, true);
  } finally {
    if (state.pending === controller) {
      state.pending = null;
      $("output").setAttribute("aria-busy", "false");
    }
  }
}

async function copy() {
  const text = state.record ? state.record.translation : "";
  try {
    await navigator.clipboard.writeText(text);
    status("Copied.");
  } catch (e) {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    status(ok ? "Copied." : "Copy is not allowed here: select the text instead.", !ok);
  }
}

function fileStatus(message, isError) {
  const s = $("file-status");
  s.textContent = message || "";
  s.classList.toggle("error", Boolean(isError));
}

// A file through /translate_file: upload (with its progress), translation, then the link to the
// translated file, which the browser downloads.
function translateFile(file) {
  const dot = file.name.lastIndexOf(".");
  const ext = dot >= 0 ? file.name.slice(dot).toLowerCase() : "";
  const link = $("download");
  link.hidden = true;
  if (!state.fileFormats.includes(ext)) {
    fileStatus(`${file.name}: this server translates ${state.fileFormats.join(", ")} files.`, true);
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("source", $("source").value);
  form.append("target", $("target").value);
  if (apiKey() !== undefined) form.append("api_key", apiKey());
  const bar = $("file-progress");
  bar.hidden = false;
  bar.value = 0;
  fileStatus(`Sending ${file.name}…`);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "translate_file");
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
  xhr.upload.onload = () => { bar.removeAttribute("value"); fileStatus(`Translating ${file.name}…`); };
  xhr.onerror = () => { bar.hidden = true; fileStatus("Cannot reach the server. Is it still running?", true); };
  xhr.onload = () => {
    bar.hidden = true;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status !== 200 || !body.translatedFileUrl) {
      fileStatus(explain(xhr.status, body.error || "", xhr.getResponseHeader("Retry-After")), true);
      return;
    }
    // The server's link, made relative to this page (it may sit behind a proxy).
    const url = new URL(body.translatedFileUrl, location.href);
    const name = decodeURIComponent(url.pathname.split("/").pop().replace(/^[0-9a-f]{32}-/, ""));
    link.href = `download_file/${url.pathname.split("/").pop()}`;
    link.download = name;
    link.textContent = `Download ${name}`;
    link.hidden = false;
    fileStatus(`${file.name} is translated.`);
    link.focus();
  };
  xhr.send(form);
}

async function start() {
  try {
    const settings = await call("frontend/settings");
    state.charLimit = settings.charLimit;
    state.keyRequired = Boolean(settings.keyRequired);
    state.fileFormats = settings.filesTranslation ? settings.supportedFilesFormat || [] : [];
    state.languages = await call("languages");
  } catch (e) {
    status(e.message || "Cannot reach the server.", true);
    // Models still loading: ask again.
    setTimeout(start, 1000 * (e.retryAfter || 5));
    return;
  }
  $("key-field").hidden = !state.keyRequired;
  $("files").hidden = state.fileFormats.length === 0;
  $("file").accept = state.fileFormats.join(",");
  $("formats").textContent = `Formats: ${state.fileFormats.join(" ")}`;
  $("api-key").value = localStorage.getItem("tolk-api-key") || "";
  fillLanguages();
  count();
  status("");
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", (e) => { e.preventDefault(); translate(true); });
  $("text").addEventListener("input", () => {
    count();
    clearTimeout(state.timer);
    state.timer = setTimeout(() => translate(false), 700);
  });
  $("source").addEventListener("change", () => { fillTargets(); translate(false); });
  $("target").addEventListener("change", () => { updateSwap(); translate(false); });
  $("swap").addEventListener("click", () => {
    const from = $("source").value;
    const to = $("target").value;
    if (state.record && state.record.translation) $("text").value = state.record.translation;
    $("source").value = to;
    fillTargets();
    $("target").value = from;
    updateSwap();
    count();
    showSource(false);
    translate(false);
  });
  $("edit").addEventListener("click", () => showSource(false));
  $("copy").addEventListener("click", copy);
  $("show-summary").addEventListener("change", () => {
    const has = $("summary").childElementCount > 0;
    $("summary").hidden = !has || !$("show-summary").checked;
  });
  $("api-key").addEventListener("change", () => localStorage.setItem("tolk-api-key", $("api-key").value.trim()));
  for (const kind of ["mouseover", "focusin"]) {
    document.addEventListener(kind, (e) => { const s = e.target.closest && e.target.closest(".s"); if (s) highlight(s.dataset.i, true); });
  }
  for (const kind of ["mouseout", "focusout"]) {
    document.addEventListener(kind, (e) => { const s = e.target.closest && e.target.closest(".s"); if (s) highlight(s.dataset.i, false); });
  }
  $("file").addEventListener("change", (e) => { if (e.target.files[0]) translateFile(e.target.files[0]); e.target.value = ""; });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over-drop"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over-drop"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over-drop");
    if (e.dataTransfer.files[0]) translateFile(e.dataTransfer.files[0]);
  });
  start();
});
