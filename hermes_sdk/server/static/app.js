// Hermes dashboard: polls /v1/ui/state every second with the tab's API key and renders it.
// No framework and no build step. Data goes into the page through textContent only; graph
// SVGs are drawn (and escaped) by the server and parsed with DOMParser.
"use strict";

(() => {
  const KEY_STORE = "hermes.apiKey";
  const POLL_MS = 1000;
  const SVG_REFRESH_MS = 5000;
  const CLASSES_REFRESH_MS = 5000;
  const $ = (id) => document.getElementById(id);

  class AuthError extends Error {}

  // A key passed once as /ui?key=... is moved to sessionStorage and removed from the URL, so it
  // does not stay in the address bar, the history or a bookmark.
  const params = new URLSearchParams(location.search);
  if (params.has("key")) {
    sessionStorage.setItem(KEY_STORE, params.get("key"));
    params.delete("key");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  let key = sessionStorage.getItem(KEY_STORE);
  let timer = null;
  let lastConnection = "";

  function setConnection(text) {
    if (text !== lastConnection) {  // the live region speaks only when the state changes
      $("connection").textContent = text;
      lastConnection = text;
    }
  }

  async function api(path) {
    const headers = {};
    if (key) headers.Authorization = "Bearer " + key;
    const resp = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
    if (resp.status === 401) throw new AuthError("key rejected");
    if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
    return resp;
  }

  // `digits` significant digits without trailing zeros after the point (100 stays "100");
  // numbers of more integer digits than that are rounded to an integer.
  function fmt(x, digits = 3) {
    if (x === null || x === undefined) return "\u2013";
    const v = Number(x);
    if (Math.abs(v) >= 10 ** digits - 0.5) return String(Math.round(v));
    const s = v.toPrecision(digits);
    return s.includes(".") && !s.includes("e") ? s.replace(/\.?0+$/, "") : s;
  }

  function row(cells, attrs = {}) {
    const tr = document.createElement("tr");
    for (const [name, value] of Object.entries(attrs)) tr.setAttribute(name, value);
    cells.forEach((cell, i) => {
      const td = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) td.scope = "row";
      if (cell instanceof Node) td.append(cell);
      else td.textContent = String(cell);
      tr.append(td);
    });
    return tr;
  }

  function fill(tableId, rows) {
    const tbody = $(tableId).tBodies[0];
    tbody.replaceChildren(...rows);
  }

  function meter(value, max, label) {
    const m = document.createElement("meter");
    m.min = 0;
    m.max = Math.max(max, 1);
    m.value = value;
    m.setAttribute("aria-label", label);
    m.textContent = value + " of " + max;
    return m;
  }

  function renderBackends(backends) {
    fill("backends", backends.map((b) => row(
      [b.backend, b.inflight, b.max_inflight,
       meter(b.inflight, b.max_inflight, b.backend + " slots in use"),
       b.waiting, b.waiting_yours],
      { "data-backend": b.backend, "data-inflight": b.inflight, "data-waiting": b.waiting },
    )));
  }

  function renderPrewarm(prewarm) {
    $("prewarm-off").hidden = prewarm !== null;
    $("prewarm").hidden = prewarm === null;
    if (prewarm === null) return;
    fill("prewarm", prewarm.backends.map((b) => row(
      [b.backend, b.status, b.inflight, fmt(b.need_probability, 2), fmt(b.cold_start_s),
       fmt(b.keep_alive_s)],
      { "data-backend": b.backend },
    )));
  }

  function renderRuns(runs) {
    $("active-runs").textContent = runs.active;
    $("runs-empty").hidden = runs.top.length > 0;
    $("runs").hidden = runs.top.length === 0;
    fill("runs", runs.top.map((r) => row(
      [r.run_id, r.app, r.node, fmt(r.attained_s), fmt(r.remaining_p50_s),
       fmt(r.remaining_p95_s), fmt(r.rank_s), fmt(r.deadline_in_s)],
      { "data-run": r.run_id, "data-app": r.app },
    )));
    const paused = runs.paused || [];
    $("paused-runs").textContent = runs.paused_count || 0;
    $("paused").hidden = paused.length === 0;
    fill("paused", paused.map((r) => row(
      [r.run_id, r.app, r.node, fmt(r.attained_s), fmt(r.paused_for_s), fmt(r.paused_s)],
      { "data-run": r.run_id, "data-app": r.app, "data-state": "paused" },
    )));
  }

  let classesAt = 0;  // when the per-app completion times were last fetched (ms)

  async function refreshClasses(force) {
    const now = Date.now();
    if (!force && now - classesAt < CLASSES_REFRESH_MS) return;
    classesAt = now;
    const windowS = $("classes-window").value;
    const query = windowS ? "?window_s=" + encodeURIComponent(windowS) : "";
    renderClasses(await (await api("/v1/ui/app_classes" + query)).json());
  }

  function renderClasses(body) {
    const classes = body.classes;
    $("runs-kept").textContent = body.runs_kept;
    $("app-classes-empty").hidden = classes.length > 0;
    $("app-classes").hidden = classes.length === 0;
    fill("app-classes", classes.map((c) => row(
      [c.app, c.runs, c.failed, fmt(c.mean_s), fmt(c.p95_s), fmt(c.max_s)],
      { "data-app-class": c.app, "data-runs": c.runs, "data-failed": c.failed },
    )));
  }

  const graphs = new Map();  // app -> {version, fetchedAt, article}

  async function refreshGraph(app, entry) {
    entry.fetching = true;
    try {
      const resp = await api("/v1/ui/apps/" + encodeURIComponent(app) + "/graph.svg");
      const doc = new DOMParser().parseFromString(await resp.text(), "image/svg+xml");
      const svg = doc.documentElement;
      if (svg.nodeName === "svg") entry.figure.replaceChildren(document.importNode(svg, true));
    } catch (err) {
      if (err instanceof AuthError) throw err;
      entry.figure.textContent = "graph unavailable: " + err.message;
    } finally {
      entry.fetching = false;
    }
  }

  function renderApps(apps) {
    const container = $("apps");
    $("apps-empty").hidden = apps.length > 0;
    const seen = new Set();
    const now = Date.now();
    for (const a of apps) {
      seen.add(a.app);
      let entry = graphs.get(a.app);
      if (!entry) {
        const article = document.createElement("article");
        article.className = "app";
        article.dataset.app = a.app;
        const h = document.createElement("h3");
        h.textContent = a.app;
        const p = document.createElement("p");
        const figure = document.createElement("figure");
        article.setAttribute("aria-label", "app " + a.app);
        article.append(h, p, figure);
        container.append(article);
        entry = { article, p, figure, version: -1, fetchedAt: 0, fetching: false };
        graphs.set(a.app, entry);
      }
      entry.p.textContent = a.runs + " runs learned \u00b7 " + a.nodes + " nodes \u00b7 " +
        a.active_runs + " running now \u00b7 " + (a.paused_runs || 0) + " paused";
      const stale = a.version !== entry.version && now - entry.fetchedAt >= SVG_REFRESH_MS;
      if (a.runs > 0 && !entry.fetching && (entry.version < 0 || stale)) {
        entry.version = a.version;
        entry.fetchedAt = now;
        refreshGraph(a.app, entry).catch(onAuthError);
      }
    }
    for (const [app, entry] of graphs) {
      if (!seen.has(app)) {
        entry.article.remove();
        graphs.delete(app);
      }
    }
  }

  function render(state) {
    $("policy").textContent = state.policy;
    $("tenant").textContent = state.tenant;
    renderBackends(state.backends);
    renderPrewarm(state.prewarm);
    renderRuns(state.runs);
    renderApps(state.apps);
    $("updated").textContent = "updated " + new Date(state.now_s * 1000).toLocaleTimeString();
  }

  function onAuthError(err) {
    if (!(err instanceof AuthError)) return;
    signOut(key ? "That key was not accepted." : "");
  }

  function signOut(message) {
    stop();
    sessionStorage.removeItem(KEY_STORE);
    key = null;
    for (const entry of graphs.values()) entry.article.remove();
    graphs.clear();
    classesAt = 0;
    fill("app-classes", []);
    $("dashboard").hidden = true;
    $("forget").hidden = true;
    $("key-form").hidden = false;
    $("key-error").textContent = message;
    setConnection("Signed out");
    $("key").focus();
  }

  async function poll() {
    timer = null;
    try {
      const state = await (await api("/v1/ui/state")).json();
      render(state);
      $("dashboard").hidden = false;
      $("key-form").hidden = true;
      $("forget").hidden = !key;
      await refreshClasses(false);  // every CLASSES_REFRESH_MS; a failure shows as connection lost
      setConnection("Live");
    } catch (err) {
      if (err instanceof AuthError) {
        onAuthError(err);
        return;
      }
      setConnection("Connection lost, retrying (" + err.message + ")");
    }
    timer = setTimeout(poll, POLL_MS);
  }

  function stop() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    key = $("key").value.trim();
    $("key").value = "";
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $("key-error").textContent = "";
    stop();
    poll();
  });

  $("forget").addEventListener("click", () => signOut(""));
  $("classes-window").addEventListener("change", () => {
    refreshClasses(true).catch((err) => {
      onAuthError(err);
      if (!(err instanceof AuthError)) setConnection("Connection lost, retrying (" + err.message + ")");
    });
  });

  poll();
})();
