/* chainkit trace viewer: a waterfall of runs with windowed rendering (only the rows
   in view are in the DOM), filters, and a detail panel. No network, no dependencies.
   Data: the JSON in <script id="ck-data">, written by chainkit.debug. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("ck-data").textContent);
  var RUNS = D.runs, X = D.x, N = RUNS.length;
  var ROW = 22, AXIS = 26, OVERSCAN = 8, MAX_CHUNK_ROWS = 2000;

  function $(id) { return document.getElementById(id); }
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") el.textContent = attrs[k];
      else if (k === "cls") el.className = attrs[k];
      else if (k === "on") el.addEventListener("click", attrs[k]);
      else el.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return el;
  }
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "-";
    var a = Math.abs(ms);
    if (a < 10) return ms.toFixed(1) + " ms";
    if (a < 1000) return Math.round(ms) + " ms";
    if (a < 60000) return (ms / 1000).toFixed(2) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }
  function json(v) {
    if (v === null || v === undefined) return "";
    return typeof v === "string" ? v : JSON.stringify(v, null, 2);
  }

  var scroller = $("scroller"), spacer = $("spacer"), rowsEl = $("rows"), ticks = $("ticks");
  var detail = $("detail"), countEl = $("count"), zoomReset = $("zoom-reset");
  var fName = $("f-name"), fKind = $("f-kind"), fStatus = $("f-status");

  var children = [];
  for (var i = 0; i < N; i++) children.push([]);
  for (i = 0; i < N; i++) if (RUNS[i].p >= 0) children[RUNS[i].p].push(i);

  var span = Math.max(D.span || 0, 0.001);
  var win0 = 0, win1 = span;
  var collapsed = new Uint8Array(N);
  var visible = [];
  var selected = -1;
  var filter = { name: "", kind: "", status: "" };
  var pool = [];

  /* ---------------------------------------------------------------- header */
  $("source").textContent = D.source || "";
  (function summary() {
    var s = D.summary, box = $("summary");
    function chip(label, value, cls) {
      var c = h("span", { cls: "chip" + (cls ? " " + cls : "") }, h("b", { text: String(value) }), " " + label);
      box.appendChild(c);
      return c;
    }
    chip("calls", s.calls); chip("runs", s.runs); chip("chunks", s.chunks);
    var e = chip("errors", s.errors + (s.failed_runs !== s.errors ? " (" + s.failed_runs + " runs)" : ""),
      s.failed_runs ? "err" : "");
    if (s.failed_runs) e.addEventListener("click", function () { fStatus.value = "error"; applyFilter(); });
    if (s.retries) chip("retries", s.retries);
    if (s.tokens !== null) chip("tokens", s.tokens);
    chip("span", fmtMs(D.span)); chip("latency", s.latency); chip("ttft", s.ttft);
    if (s.events) chip("events", s.events);
    D.kinds.forEach(function (k) { fKind.appendChild(h("option", { value: k, text: k })); });
  })();

  /* -------------------------------------------------------------- filtering */
  function filtering() { return !!(filter.name || filter.kind || filter.status); }

  function computeVisible() {
    var out = [], q = filter.name.toLowerCase(), active = filtering(), skip = -1;
    for (var i = 0; i < N; i++) {
      var r = RUNS[i];
      if (active) {
        if (q && r.n.toLowerCase().indexOf(q) < 0 && r.id.indexOf(q) !== 0 &&
            !(r.h && r.h.toLowerCase().indexOf(q) >= 0)) continue;
        if (filter.kind && r.k !== filter.kind) continue;
        if (filter.status && r.s !== filter.status) continue;
        out.push(i);
      } else {
        if (skip >= 0) { if (r.d > skip) continue; skip = -1; }
        out.push(i);
        if (collapsed[i]) skip = r.d;
      }
    }
    visible = out;
    invalidate();
    spacer.style.height = visible.length * ROW + "px";
    countEl.textContent = visible.length + " of " + N + " runs";
    countEl.setAttribute("data-visible", String(visible.length));
    countEl.setAttribute("data-total", String(N));
    $("empty").style.display = visible.length ? "none" : "block";
    $("empty").textContent = N ? "no runs match the filters" : "no runs in this trace";
    render();
  }

  function applyFilter() {
    filter.name = fName.value.trim();
    filter.kind = fKind.value;
    filter.status = fStatus.value;
    computeVisible();
  }
  fName.addEventListener("input", applyFilter);
  fKind.addEventListener("change", applyFilter);
  fStatus.addEventListener("change", applyFilter);
  $("collapse-all").addEventListener("click", function () {
    for (var i = 0; i < N; i++) collapsed[i] = children[i].length ? 1 : 0;
    computeVisible();
  });
  $("expand-all").addEventListener("click", function () { collapsed.fill(0); computeVisible(); });

  /* ------------------------------------------------------------------ axis */
  function niceStep(range, target) {
    var raw = range / target, p = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= raw) return steps[i] * p;
    return 10 * p;
  }
  function fmtTick(ms, step) {
    if (step >= 1000) return (ms / 1000).toFixed(Math.max(0, -Math.floor(Math.log10(step / 1000)))) + " s";
    return ms.toFixed(Math.max(0, -Math.floor(Math.log10(step)))) + " ms";
  }
  function drawAxis() {
    ticks.textContent = "";
    var range = win1 - win0, width = ticks.clientWidth || 600;
    var step = niceStep(range, Math.max(2, Math.floor(width / 90)));
    if (!(step > 0) || !isFinite(step)) step = range || 1;
    for (var t = Math.ceil(win0 / step) * step, n = 0; t <= win1 + 1e-9 && n < 200; t += step, n++) {
      var el = h("div", { cls: "tick", text: fmtTick(t, step) });
      el.style.left = ((t - win0) / range * 100) + "%";
      ticks.appendChild(el);
    }
    zoomReset.disabled = win0 === 0 && win1 === span;
    invalidate();
  }

  /* ------------------------------------------------------------- rendering */
  function makeRow() {
    var el = h("div", { cls: "row" },
      h("div", { cls: "label" }, h("span", { cls: "caret" }), h("span", { cls: "st" }),
        h("span", { cls: "name" }), h("span", { cls: "hint" }), h("span", { cls: "kind" })),
      h("div", { cls: "dur" }),
      h("div", { cls: "track" }, h("div", { cls: "bar" }, h("div", { cls: "wait" }))));
    el.style.top = "0px";
    rowsEl.appendChild(el);
    return el;
  }
  var GLYPH = { ok: "✓", error: "✗", running: "…" };

  function fillRow(el, index, pos) {
    var r = RUNS[index], label = el.firstChild, bar = el.lastChild.firstChild;
    el.style.display = "";
    el.style.transform = "translateY(" + (pos * ROW) + "px)";
    el.setAttribute("data-index", String(index));
    el.setAttribute("data-id", r.id);
    el.className = "row" + (r.s === "error" ? " err" : "") + (index === selected ? " sel" : "");
    label.style.paddingLeft = (filtering() ? 4 : 4 + r.d * 14) + "px";
    var caret = label.childNodes[0];
    caret.textContent = children[index].length && !filtering() ? (collapsed[index] ? "▸" : "▾") : "";
    var st = label.childNodes[1];
    st.textContent = GLYPH[r.s] || "?";
    st.className = "st s-" + r.s;
    label.childNodes[2].textContent = r.n;
    label.childNodes[3].textContent = r.h ? " " + r.h : "";
    label.childNodes[4].textContent = r.k + (r.x ? " \u2225" : "");
    el.title = r.n + " (" + r.k + ", " + r.s + (r.x ? ", a parallel branch" : "") + ")" +
      (r.e ? "\n" + r.e : "");
    el.childNodes[1].textContent = r.b === null ? "" : fmtMs(r.b - r.a);
    if (r.a === null) { bar.style.display = "none"; return; }
    bar.style.display = "";
    var end = r.b === null ? span : r.b, range = win1 - win0;
    bar.className = "bar k-" + r.k + " s-" + r.s;
    bar.style.left = ((r.a - win0) / range * 100) + "%";
    bar.style.width = ((end - r.a) / range * 100) + "%";
    var wait = bar.firstChild;
    wait.style.width = r.f === null || end <= r.a ? "0" : Math.min(100, r.f / (end - r.a) * 100) + "%";
  }

  var pending = false, version = 0;
  /* Row elements are bound to positions modulo the pool size, so a row keeps its
     element while it stays in view and a scroll step fills only the rows that came
     into view. `version` changes whenever every row must be redrawn. */
  function invalidate() { version++; }
  function render() {
    var top = scroller.scrollTop - AXIS, height = scroller.clientHeight;
    var first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    var last = Math.min(visible.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    while (pool.length < last - first) { pool.push(makeRow()); version++; }
    var size = pool.length, used = new Uint8Array(size);
    for (var pos = first; pos < last; pos++) {
      var slot = pos % size, el = pool[slot], key = visible[pos] + ":" + pos + ":" + version;
      used[slot] = 1;
      if (el._ck !== key) { fillRow(el, visible[pos], pos); el._ck = key; }
    }
    for (var k = 0; k < size; k++) {
      if (!used[k] && pool[k]._ck !== null) {
        pool[k].style.display = "none";
        pool[k].removeAttribute("data-id");
        pool[k]._ck = null;
      }
    }
  }
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; render(); });
  }
  scroller.addEventListener("scroll", schedule, { passive: true });
  window.addEventListener("resize", function () { drawAxis(); render(); });

  /* ------------------------------------------------------------ interaction */
  function rowOf(target) {
    while (target && target !== rowsEl) {
      if (target.classList && target.classList.contains("row")) return target;
      target = target.parentNode;
    }
    return null;
  }
  rowsEl.addEventListener("click", function (ev) {
    var row = rowOf(ev.target);
    if (!row) return;
    var index = +row.getAttribute("data-index");
    if (ev.target.classList.contains("caret") && children[index].length && !filtering()) {
      collapsed[index] = collapsed[index] ? 0 : 1;
      computeVisible();
      return;
    }
    select(index);
  });
  rowsEl.addEventListener("dblclick", function (ev) {
    var row = rowOf(ev.target);
    if (row) zoomTo(+row.getAttribute("data-index"));
  });
  zoomReset.addEventListener("click", function () { win0 = 0; win1 = span; drawAxis(); render(); });

  function zoomTo(index) {
    var r = RUNS[index];
    if (r.a === null) return;
    var end = r.b === null ? span : r.b, pad = Math.max((end - r.a) * 0.02, 0.01);
    win0 = Math.max(0, r.a - pad); win1 = Math.min(span, end + pad);
    if (win1 <= win0) { win0 = 0; win1 = span; }
    drawAxis(); render();
  }
  scroller.addEventListener("wheel", function (ev) {
    if (!ev.ctrlKey) return;
    ev.preventDefault();
    var rect = ticks.getBoundingClientRect(), range = win1 - win0;
    var at = win0 + Math.min(1, Math.max(0, (ev.clientX - rect.left) / rect.width)) * range;
    var factor = ev.deltaY > 0 ? 1.25 : 0.8, next = Math.min(span, Math.max(span / 1e6, range * factor));
    win0 = Math.max(0, at - (at - win0) * next / range);
    win1 = Math.min(span, win0 + next);
    drawAxis(); render();
  }, { passive: false });
  scroller.addEventListener("keydown", function (ev) {
    var pos = visible.indexOf(selected);
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      var next = pos < 0 ? 0 : pos + (ev.key === "ArrowDown" ? 1 : -1);
      if (next >= 0 && next < visible.length) select(visible[next]);
    } else if ((ev.key === "ArrowLeft" || ev.key === "ArrowRight") && selected >= 0 && !filtering()) {
      collapsed[selected] = ev.key === "ArrowLeft" && children[selected].length ? 1 : 0;
      computeVisible();
    } else if (ev.key === "Escape") {
      win0 = 0; win1 = span; drawAxis(); render();
    }
  });

  function reveal(index) {
    if (!filtering()) {
      for (var p = RUNS[index].p; p >= 0; p = RUNS[p].p) collapsed[p] = 0;
      computeVisible();
    }
    var pos = visible.indexOf(index);
    if (pos < 0) return;
    var top = AXIS + pos * ROW, view = scroller.scrollTop;
    if (top < view + AXIS || top + ROW > view + scroller.clientHeight) {
      scroller.scrollTop = Math.max(0, top - scroller.clientHeight / 3);
    }
  }

  function select(index) {
    selected = index;
    invalidate();
    reveal(index);
    render();
    showDetail(index);
  }

  /* --------------------------------------------------------------- detail */
  function link(index) {
    var r = RUNS[index];
    return h("a", { text: r.n + " · " + r.id.slice(0, 8), on: function () { select(index); } });
  }
  function kv(rows) {
    var t = h("table", { cls: "kv" });
    rows.forEach(function (row) {
      if (row[1] === null || row[1] === undefined || row[1] === "") return;
      var td = h("td");
      if (typeof row[1] === "string" || typeof row[1] === "number") td.textContent = String(row[1]);
      else td.appendChild(row[1]);
      t.appendChild(h("tr", null, h("th", { text: row[0] }), td));
    });
    return t;
  }
  function usageText(u) {
    if (!u) return "";
    var parts = [];
    ["input_tokens", "output_tokens", "total_tokens"].forEach(function (k) {
      if (u[k] !== undefined && u[k] !== null) parts.push(k.replace("_tokens", "") + " " + u[k]);
    });
    return parts.join(" · ");
  }

  function chunkSection(r, x) {
    var box = h("section", { id: "chunks" });
    var chunks = x.ch || [];
    box.appendChild(h("h3", { text: "Text, chunk by chunk (" + chunks.length + " chunks)" }));
    if (!chunks.length) {
      if (x.text) box.appendChild(h("pre", { cls: "text", text: x.text }));
      else box.appendChild(h("p", { cls: "more", text: "no chunks" }));
      return box;
    }
    var text = h("pre", { cls: "text" });
    var prev = 0, maxGap = 0, gaps = [];
    chunks.forEach(function (c) { var g = c[0] - prev; gaps.push(g); prev = c[0]; if (g > maxGap) maxGap = g; });
    chunks.forEach(function (c, i) {
      if (c[1]) text.appendChild(h("span", { cls: "c", title: "#" + i + " +" + fmtMs(gaps[i]), text: c[1] }));
    });
    box.appendChild(text);
    var table = h("table", { cls: "chunks" },
      h("tr", null, h("th", { text: "#" }), h("th", { text: "at" }), h("th", { text: "gap before" }),
        h("th", { text: "text" })));
    var shown = Math.min(chunks.length, MAX_CHUNK_ROWS);
    for (var i = 0; i < shown; i++) {
      var c = chunks[i];
      var gap = h("td", { cls: "t" });
      var gb = h("span", { cls: "gapbar" });
      gb.style.width = (maxGap > 0 ? Math.round(gaps[i] / maxGap * 60) : 0) + "px";
      gap.appendChild(gb);
      gap.appendChild(document.createTextNode("+" + fmtMs(gaps[i])));
      var cell = h("td", { cls: "x" });
      if (c[1]) cell.appendChild(h("code", { text: JSON.stringify(c[1]).slice(1, -1) }));
      else cell.appendChild(h("span", { cls: "empty", text: "(empty)" }));
      table.appendChild(h("tr", { cls: "chunk" }, h("td", { cls: "t", text: String(i) }),
        h("td", { cls: "t", text: fmtMs(c[0]) }), gap, cell));
    }
    box.appendChild(table);
    if (chunks.length > shown) box.appendChild(h("p", { cls: "more", text: (chunks.length - shown) + " more chunks" }));
    return box;
  }

  function eventSection(x) {
    var evs = x.ev || [];
    var box = h("section", { id: "events" }, h("h3", { text: "Events (" + evs.length + ")" }));
    if (!evs.length) { box.appendChild(h("p", { cls: "more", text: "no events recorded for this run" })); return box; }
    var table = h("table", { cls: "ev" });
    evs.forEach(function (e) {
      table.appendChild(h("tr", { cls: "event" + (/error$/.test(e[1]) ? " e-error" : "") },
        h("td", { text: "+" + fmtMs(e[0]) }), h("td", { text: e[1] }), h("td", { text: e[2] }),
        h("td", { text: e[3] })));
    });
    box.appendChild(table);
    return box;
  }

  function showDetail(index) {
    var r = RUNS[index], x = X[index] || {};
    detail.textContent = "";
    detail.setAttribute("data-id", r.id);
    detail.appendChild(h("h2", null, r.n, h("span", { cls: "badge", text: r.k }),
      h("span", { cls: "badge s-" + r.s, text: r.s })));
    if (r.e) detail.appendChild(h("div", { cls: "errbox", id: "error", text: r.e }));
    var kids = h("span");
    children[index].forEach(function (c, i) { if (i) kids.appendChild(document.createTextNode(", ")); kids.appendChild(link(c)); });
    detail.appendChild(kv([
      ["run id", r.id],
      ["parent", r.p >= 0 ? link(r.p) : "(root)"],
      ["children", children[index].length ? kids : ""],
      ["started", r.a === null ? "-" : "+" + fmtMs(r.a)],
      ["latency", r.b === null ? (r.s === "running" ? "running" : "-") : fmtMs(r.b - r.a)],
      ["time to first chunk", r.f === null ? "" : fmtMs(r.f)],
      ["chunks", r.c ? String(r.c) : ""],
      ["chunks/s", x.cps ? x.cps.toFixed(1) : ""],
      ["gap p50 / p95", x.g50 === null || x.g50 === undefined ? "" : fmtMs(x.g50) + " / " + fmtMs(x.g95)],
      ["tokens", usageText(x.usage)],
      ["retries", r.r ? String(r.r) : ""],
      ["tags", (x.tags || []).join(", ")],
    ]));
    if (r.k === "chat_model" || r.k === "llm" || (x.ch && x.ch.length)) detail.appendChild(chunkSection(r, x));
    detail.appendChild(h("h3", { text: "Inputs" }));
    detail.appendChild(h("pre", { id: "inputs", text: json(x.in) || "(none recorded)" }));
    detail.appendChild(h("h3", { text: "Outputs" }));
    detail.appendChild(h("pre", { id: "outputs", text: json(x.out) || (r.s === "error" ? "(failed)" : "(none recorded)") }));
    if (!(r.k === "chat_model" || r.k === "llm" || (x.ch && x.ch.length)) && x.text) {
      detail.appendChild(h("h3", { text: "Text" }));
      detail.appendChild(h("pre", { text: x.text }));
    }
    detail.appendChild(eventSection(x));
    if (x.meta && Object.keys(x.meta).length) {
      detail.appendChild(h("h3", { text: "Metadata" }));
      detail.appendChild(h("pre", { text: json(x.meta) }));
    }
  }

  /* ------------------------------------------------------------------ start */
  computeVisible();
  drawAxis();
  window.ckViewer = {
    ready: true,
    readyAt: performance.now(),
    render: render,
    applyFilter: applyFilter,
    total: N,
    visibleCount: function () { return visible.length; },
    select: function (id) {
      for (var i = 0; i < N; i++) if (RUNS[i].id === id) { select(i); return true; }
      return false;
    },
    zoomTo: zoomTo,
  };
  document.documentElement.setAttribute("data-ready", "1");
})();
