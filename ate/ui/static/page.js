// The operator's page: renders the station's snapshots pushed over Server-Sent Events.
// Text goes in with textContent only (station data is never parsed as HTML).
"use strict";

const CFG = JSON.parse(document.getElementById("catalog").textContent);
const T = CFG.messages;
let me = { user: null }; // the signed-in user, role and CSRF token
const ICON = {
  waiting: "\u25CB", testing: "\u25B6", provisioning: "\u25C6", locking: "\u25A0",
  PASS: "\u2714", FAIL: "\u2716", ERROR: "\u26A0", ABORTED: "\u25A0", EMPTY: "\u2013",
};
const tiles = new Map(); // "fixture/slot" -> elements
const fixtures = new Map(); // fixture -> elements
let received = 0; // performance.now() when the last snapshot arrived
let last = null;
window.__ate = { latencies: [], version: -1 };

function el(tag, cls, parent) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (parent) parent.appendChild(e);
  return e;
}

function setText(e, text) {
  if (e.textContent !== text) e.textContent = text;
}

function fmtElapsed(s) {
  const m = Math.floor(s / 60);
  const r = Math.floor(s % 60);
  return m + ":" + String(r).padStart(2, "0");
}

function header(snap) {
  const h = document.getElementById("header");
  if (!h.firstChild) {
    for (const key of ["station", "sequence", "operator", "lot", "units", "fpy", "uph", "database", "spool"]) {
      const item = el("div", "hitem", h);
      item.dataset.key = key;
      setText(el("span", "hlabel", item), T[key]);
      el("span", "hvalue", item);
    }
  }
  const first = snap.fixtures[0] || {};
  const c = snap.counters;
  const values = {
    station: snap.station,
    sequence: first.sequence || "\u2013",
    operator: first.operator || "\u2013",
    lot: snap.lot || "\u2013",
    units: String(c.units),
    fpy: c.fpy === null ? "\u2013" : c.fpy + "%",
    uph: String(c.uph),
    database: T["db." + snap.database] || snap.database,
    spool: String(snap.spool),
  };
  for (const item of h.children) setText(item.querySelector(".hvalue"), values[item.dataset.key]);
}

function fixtureBox(f) {
  let box = fixtures.get(f.fixture);
  if (!box) {
    const root = el("section", "fixture", document.getElementById("fixtures"));
    root.dataset.fixture = f.fixture;
    const bar = el("div", "fbar", root);
    box = {
      root,
      name: el("span", "fname", bar),
      state: el("span", "fstate", bar),
      grid: el("div", "grid", root),
    };
    fixtures.set(f.fixture, box);
  }
  setText(box.name, T.fixture + " " + f.fixture);
  let word;
  // A warning icon as well as the colour: the state must not depend on telling colours apart.
  if (!f.online) word = "\u26A0 " + T["fixture.offline"];
  else if (f.state === "refused") {
    word = "\u26A0 " + T["fixture.refused"] + (f.refusal ? ": " + f.refusal : "");
  }
  else if (f.state === "waiting") word = T["fixture.load"];
  else word = T["fixture." + f.state] || f.state;
  setText(box.state, word);
  box.root.dataset.state = f.online ? f.state : "offline";
  return box;
}

function tile(box, f, t) {
  const fixture = f.fixture;
  const key = fixture + "/" + t.slot;
  let e = tiles.get(key);
  if (!e) {
    const root = el("article", "tile", box.grid);
    root.dataset.slot = String(t.slot);
    const top = el("div", "top", root);
    e = {
      root,
      slot: el("span", "slot", top),
      icon: el("span", "icon", top),
      word: el("span", "word", top),
      step: el("div", "step", root),
      bar: el("div", "bar", root),
      fail: el("div", "fail", root),
      todo: el("div", "todo", root),
      ids: el("div", "ids", root),
      elapsed: null,
    };
    e.fill = el("div", "fill", e.bar);
    e.label = el("div", "label", root);
    e.labelKey = null;
    e.label.hidden = true;
    e.ask = el("div", "ask", root);
    e.ask.hidden = true;
    e.askId = null;
    e.elapsed = el("span", "elapsed", top);
    e.scanRow = makeScan(root, fixture, t.slot);
    tiles.set(key, e);
  }
  showScan(e, f, t);
  e.root.dataset.state = t.state;
  setText(e.slot, T.slot + " " + t.slot);
  setText(e.icon, ICON[t.state] || "?");
  setText(e.word, T["state." + t.state] || t.state);
  const running = ["testing", "provisioning", "locking"].includes(t.state);
  setText(e.step, running || t.state === "waiting" ? (t.step ? T.step + ": " + t.step : "") : "");
  const [done, total] = t.progress;
  const pct = t.state === "PASS" ? 100 : total > 0 ? Math.min(100, (100 * done) / total) : 0;
  e.fill.style.width = pct + "%";
  e.bar.hidden = total === 0 || t.state === "PASS" || t.state === "EMPTY";
  let fail = "";
  if (t.failing && t.state === "FAIL") {
    const f = t.failing;
    if (f.limits) {
      fail = T.failing + ": " + f.step + " \u00B7 " + f.measurement + " = " + f.value +
        (f.unit ? " " + f.unit : "") + " (" + T.limits + " " + f.limits + ")";
    } else {
      // No numeric limits (a NACK, an answer): the step's own reason says what was wanted.
      fail = T.failing + ": " + f.step + " \u00B7 " + (f.reason || f.value);
    }
  } else if (t.state === "ERROR" && t.reason) {
    fail = t.reason;
  }
  setText(e.fail, fail);
  setText(e.todo, T["do." + t.state] || "");
  const ids = [];
  if (t.mac) ids.push(T.mac + " " + t.mac);
  if (t.serial) ids.push(T.serial + " " + t.serial);
  setText(e.ids, ids.join("  \u00B7  "));
  showPrompt(e, t.prompt);
  showLabel(e, t.label);
  e.base = t.elapsed_s;
  e.running = running;
}

// A keyboard-wedge scanner types the label and Enter into the focused field; the next
// slot's field takes the focus, so a panel's labels are scanned one after another.
function makeScan(root, fixture, slot) {
  const row = el("form", "scan", root);
  row.hidden = true;
  const input = el("input", "scancode", row);
  input.placeholder = T["scan.here"];
  input.setAttribute("aria-label", T["scan.here"] + " " + T.slot + " " + slot);
  input.autocomplete = "off";
  input.dataset.fixture = fixture;
  input.dataset.slot = String(slot);
  const shown = el("span", "scanned", row);
  const problem = el("div", "scanerror", row);
  row.onsubmit = async (ev) => {
    ev.preventDefault();
    const code = input.value;
    const r = await post("scan/" + encodeURIComponent(fixture) + "/" + slot, { code });
    if (!r.ok) { setText(problem, await errorOf(r)); input.select(); return; }
    setText(problem, "");
    input.value = "";
    const inputs = [...document.querySelectorAll("input.scancode")].filter(
      (i) => !i.closest("form").hidden);
    const next = inputs[inputs.indexOf(input) + 1];
    if (next) next.focus();
  };
  return { row, input, shown, problem };
}

function showScan(e, f, t) {
  const s = e.scanRow;
  const open = f.scan && f.scan !== "off" && f.online &&
    !["testing", "contact", "debouncing"].includes(f.state);
  s.row.hidden = !open;
  if (!open) return;
  setText(s.shown, t.scanned ? T["scan.label"] + ": " + t.scanned
    : f.scan === "required" ? T["scan.needed"] : "");
  s.row.dataset.scanned = t.scanned ? "1" : "";
}

function post(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (me.csrf) headers["X-CSRF-Token"] = me.csrf;
  return fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
}

async function errorOf(r) {
  const body = await r.json().catch(() => ({}));
  return body.error || String(r.status);
}

function notice(text) {
  const n = document.getElementById("notice");
  setText(n, text || "");
  n.hidden = !text;
}

function send(e, id, answer) {
  for (const b of e.ask.querySelectorAll("button, input")) b.disabled = true;
  post("prompt/" + encodeURIComponent(id), { answer }).then(async (r) => {
    if (r.ok) return;
    setText(e.askError, await errorOf(r));
    for (const b of e.ask.querySelectorAll("button, input")) b.disabled = false;
  });
}

function account() {
  const box = document.getElementById("account");
  box.replaceChildren();
  if (!CFG.auth) { box.hidden = true; return; }
  if (me.user) {
    setText(el("span", "who", box), T.signedin + ": " + me.user + " (" + T["role." + me.role] + ")");
    for (const name of CFG.actions) {
      const b = el("button", "action", box);
      b.dataset.action = name;
      setText(b, T["action." + name] || name);
      b.onclick = async () => {
        const r = await post("action/" + encodeURIComponent(name));
        notice(r.ok ? "" : await errorOf(r));
      };
    }
    if (CFG.load && (me.role === "engineer" || me.role === "admin")) {
      const b = el("button", "load", box);
      setText(b, T["load.open"]);
      b.onclick = showLoad;
    }
    const out = el("button", "signout", box);
    setText(out, T.signout);
    out.onclick = async () => { await post("signout"); me = { user: null }; account(); relabel(); };
    return;
  }
  const form = el("form", "signin", box);
  const name = el("input", "name", form);
  name.placeholder = T.name;
  name.setAttribute("aria-label", T.name);
  name.autocomplete = "username";
  const pin = el("input", "pin", form);
  pin.type = "password";
  pin.inputMode = "numeric";
  pin.placeholder = T.pin;
  pin.setAttribute("aria-label", T.pin);
  pin.autocomplete = "current-password";
  const go = el("button", "go", form);
  go.type = "submit";
  setText(go, T.signin);
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    // A badge reader types its id and Enter into the first field: no PIN means a badge.
    const r = await post("signin", pin.value ? { name: name.value.trim(), pin: pin.value }
      : { badge: name.value.trim() });
    name.value = "";
    pin.value = "";
    if (!r.ok) { notice(await errorOf(r)); return; }
    me = await r.json();
    notice("");
    account();
    relabel();
  };
}

// An engineer loads another approved sequence or profile: the station lists the files
// beside the running ones with their approval; only approved ones can be chosen.
async function showLoad() {
  const r = await fetch("load", { headers: { "X-CSRF-Token": me.csrf } });
  if (!r.ok) { notice(await errorOf(r)); return; }
  const offer = await r.json();
  const box = document.getElementById("load");
  box.replaceChildren();
  box.hidden = false;
  setText(el("h2", "", box), T["load.title"]);
  for (const kind of ["sequence", "profile"]) {
    const rows = offer[kind];
    if (!rows) continue;
    setText(el("h3", "", box), T["load." + kind]);
    for (const c of rows) {
      const row = el("div", "choice", box);
      row.dataset.digest = c.digest;
      setText(el("span", "cname", row), c.name + " \u00B7 " + c.file);
      setText(el("span", "cstate", row), c.running ? T["load.running"]
        : c.approved ? T["load.approved"] + " " + c.approved_by : T["load.unapproved"]);
      const go = el("button", "choose", row);
      setText(go, T["load.go"]);
      go.disabled = c.running || !c.approved;
      go.onclick = async () => {
        const answer = await post("load", { kind, digest: c.digest });
        if (!answer.ok) { notice(await errorOf(answer)); return; }
        box.hidden = true;
        notice(T["load.done"].replace("{name}", (await answer.json()).name));
      };
    }
  }
  const close = el("button", "close", box);
  setText(close, T["load.close"]);
  close.onclick = () => { box.hidden = true; };
}

function relabel() {
  for (const e of tiles.values()) { e.labelKey = null; }
  if (last) render(last);
}

function showPrompt(e, p) {
  // Rebuilt only when the question changes, so typing is not lost to the next snapshot.
  const id = p ? p.id : null;
  if (id === e.askId) return;
  e.askId = id;
  e.ask.replaceChildren();
  e.ask.hidden = !p;
  if (!p) return;
  setText(el("div", "question", e.ask), p.text);
  if (p.image) {
    const img = el("img", "compare", e.ask);
    img.alt = p.text;
    img.src = "prompt/" + encodeURIComponent(p.id) + "/image";
  }
  const row = el("div", "answers", e.ask);
  if (p.kind === "number") {
    const input = el("input", "number", row);
    input.type = "text";
    input.inputMode = "decimal";
    input.setAttribute("aria-label", p.text);
    if (p.unit) setText(el("span", "unit", row), p.unit);
    const ok = el("button", "answer", row);
    setText(ok, T["prompt.ok"]);
    ok.onclick = () => send(e, p.id, input.value.trim());
  } else {
    const options = p.kind === "confirm" ? [["yes", T["prompt.yes"]], ["no", T["prompt.no"]]]
      : p.choices.map((c) => [c, c]);
    for (const [value, label] of options) {
      const b = el("button", "answer", row);
      b.dataset.answer = value;
      setText(b, label);
      b.onclick = () => send(e, p.id, value);
    }
  }
  e.askError = el("div", "askerror", e.ask);
}

function showLabel(e, l) {
  const key = l ? JSON.stringify(l) : null;
  if (key === e.labelKey) return;
  e.labelKey = key;
  e.label.replaceChildren();
  e.label.hidden = !l;
  if (!l) return;
  const img = el("img", "qr", e.label);
  img.alt = T["label.preview"] + " " + l.serial;
  img.src = "label/" + encodeURIComponent(l.serial) + ".png";
  const state = el("span", "lstate", e.label);
  setText(state, l.failed ? T["label.failed"] : l.printed ? T["label.printed"]
    : l.printer ? T["label.queued"] : T["label.noprinter"]);
  e.label.dataset.failed = l.failed ? "1" : "";
  if (me.user) {
    const b = el("button", "reprint", e.label);
    setText(b, T.reprint);
    b.onclick = async () => {
      const r = await post("label/" + encodeURIComponent(l.serial) + "/reprint");
      notice(r.ok ? "" : await errorOf(r));
    };
  }
}

function tick() {
  // Elapsed time moves between snapshots without asking the station.
  const extra = last ? (performance.now() - received) / 1000 : 0;
  for (const e of tiles.values()) {
    const s = e.running ? e.base + extra : e.base;
    setText(e.elapsed, e.base > 0 || e.running ? fmtElapsed(s) : "");
  }
}

function render(snap) {
  last = snap;
  received = performance.now();
  header(snap);
  for (const f of snap.fixtures) {
    const box = fixtureBox(f);
    for (const t of f.tiles) tile(box, f, t);
  }
  tick();
  document.body.dataset.version = String(snap.version);
  window.__ate.version = snap.version;
  // Event-to-screen latency of the oldest change this snapshot carries (bench/page.py).
  window.__ate.latencies.push(Date.now() - (snap.since_ms || snap.changed_at_ms));
}

function connect() {
  const banner = document.getElementById("banner");
  const source = new EventSource("events");
  source.onopen = () => { banner.hidden = true; };
  source.onmessage = (m) => render(JSON.parse(m.data));
  source.onerror = () => { banner.hidden = false; banner.textContent = T.disconnected; };
}

setInterval(tick, 1000);
fetch("session").then((r) => r.json()).then((s) => { me = s; account(); connect(); });
