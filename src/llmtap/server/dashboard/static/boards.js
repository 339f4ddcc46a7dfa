// A board: panels drawn from /api/v1/boards (or a published link's /b/TOKEN/data), and its
// editor. Every text from the board or the data goes in through textContent or attributes,
// never as markup. The spec being edited lives here until "Save" (a prompt guards leaving).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const app = document.getElementById("board-app");
  if (!app) return;
  const board = JSON.parse(document.getElementById("board-json").textContent);
  const choices = JSON.parse(document.getElementById("board-choices").textContent);
  const { project, csrf, shared } = app.dataset;
  const mayWrite = app.dataset.mayWrite === "1";
  const colours = ["#3b5bdb", "#c92a2a", "#2b8a3e", "#e67700", "#862e9c", "#0b7285"];
  let spec = structuredClone(board.spec);
  let dirty = false;
  let fields = null; // what the project holds, for the pickers

  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
    }
    e.append(...children);
    return e;
  };
  const withProject = (path, extra = {}) =>
    path + "?" + new URLSearchParams({ project, ...extra }).toString();
  async function api(method, path, body, extra) {
    const response = await fetch(withProject(path, extra), {
      method,
      headers: { "content-type": "application/json", accept: "application/json", "x-csrf-token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || String(response.status));
    return data;
  }
  const status = (text) => { if ($("board-status")) $("board-status").textContent = text; };
  const touch = () => { dirty = true; status("unsaved changes"); draw(); };
  window.addEventListener("beforeunload", (event) => {
    if (dirty) { event.preventDefault(); event.returnValue = ""; }
  });

  // -- values -------------------------------------------------------------------------------
  const measureOf = (group, measure) =>
    choices.measures[measure].reduce((v, k) => (v == null ? null : v[k]), group);
  // The field a panel groups by, as its query names it ("user" is attributes.user).
  const groupField = (panel) => panel.group_by && (choices.aliases[panel.group_by] || panel.group_by);
  const groupOf = (panel, group) => (panel.group_by ? group.key[groupField(panel)] : null);
  const label = (v) => (v === null || v === undefined ? "(none)" : String(v));
  // Counts and sums: 0 where there are no events (a rate or a percentile is unknown there).
  const additive = new Set(["requests", "errors", "cost", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "feedback_count"]);
  const valueOf = (group, measure) => (group ? measureOf(group, measure) : additive.has(measure) ? 0 : null);
  // Dollars as the pages show them: cents from $1, two significant digits under it.
  const dollars = (v) => (Math.abs(v) >= 1 ? "$" + v.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 })
    : v === 0 ? "$0" : "$" + Number(v.toPrecision(2)).toString());
  const fmt = (v, measure) => {
    if (v == null) return "–";
    if (measure === "error_rate" || measure === "low_rating_share") return (100 * v).toFixed(1) + "%";
    if (measure === "cost") return dollars(v);
    return Math.abs(v) < 10 && !Number.isInteger(v) ? v.toFixed(4) : Math.round(v).toLocaleString();
  };
  const seconds = (iso) => Math.floor(Date.parse(iso) / 1000);
  const bucketSeconds = { minute: 60, hour: 3600, day: 86400, week: 604800 };

  // The events page with the panel's filters, and the clicked bucket or group, filled in. On a
  // published link, its read-only list of them, when the maker allowed it (the server takes
  // only the panel, group and bucket: every filter comes from the board).
  function drill(panelData, panel, group, bucketStart) {
    if (shared) {
      if (app.dataset.bodies !== "1") return;
      const q = { panel: panel.id };
      if (group != null && panel.group_by) q.group = String(group);
      if (bucketStart != null) q.bucket = String(bucketStart);
      window.location.href = shared + "/events?" + new URLSearchParams(q).toString();
      return;
    }
    const params = { ...panelData.query };
    delete params.group_by;
    const bucket = (panelData.query.group_by || "").split(",").find((g) => g in bucketSeconds);
    if (bucket && bucketStart != null) {
      params.from = new Date(bucketStart * 1000).toISOString();
      params.to = new Date((bucketStart + bucketSeconds[bucket]) * 1000).toISOString();
    }
    if (group != null && panel.group_by) params[groupField(panel)] = String(group);
    window.location.href = withProject("/events", params);
  }

  // -- drawing ------------------------------------------------------------------------------
  function drawNumber(box, panel, data) {
    const m = panel.measures[0];
    // No events in the range is 0 requests (-100% against a busy previous period), not "–".
    const value = valueOf(data.stats.groups[0], m);
    box.append(el("div", { class: "number", text: fmt(value, m) }));
    const before = data.previous ? valueOf(data.previous.groups[0], m) : null;
    if (value != null && before) {
      const change = (100 * (value - before)) / before;
      box.append(el("div", { class: "change " + (change >= 0 ? "up" : "down"), text: `${change >= 0 ? "+" : ""}${change.toFixed(1)}% vs previous period` }));
    } else box.append(el("div", { class: "dim", text: "no previous period to compare" }));
    box.addEventListener("click", () => drill(data, panel, null, null));
  }

  // The latency histogram of the panel's events: a bar per latency range.
  function drawHistogram(box, panel, data) {
    const bins = (data.stats.groups[0] || {}).latency_histogram_ms || {};
    const top = Math.max(1, ...Object.values(bins));
    const table = el("table", { class: "bars" }, el("tbody", {}, ...Object.entries(bins).map(([k, n]) => {
      const bar = el("span");
      bar.style.width = (100 * n) / top + "%";
      const [side, ms] = k.split("_");
      return el("tr", { "data-bin": k }, el("td", { text: `${side === "le" ? "≤" : ">"} ${Number(ms).toLocaleString()} ms` }),
        el("td", { class: "bar" }, bar), el("td", { text: n.toLocaleString() }));
    })));
    table.addEventListener("click", () => drill(data, panel, null, null));
    box.append(table);
  }

  function drawTable(box, panel, data, bars) {
    const groups = data.stats.groups;
    const top = Math.max(1, ...groups.map((g) => measureOf(g, panel.measures[0]) || 0));
    const head = el("tr", {}, el("th", { text: panel.group_by || "" }), ...panel.measures.map((m) => el("th", { text: m })));
    const table = el("table", { class: bars ? "bars" : "events" }, el("thead", {}, head));
    const body = el("tbody");
    for (const g of groups) {
      const value = groupOf(panel, g);
      const cells = panel.measures.map((m, i) => {
        if (bars && i === 0) {
          const bar = el("span");
          bar.style.width = (100 * (measureOf(g, m) || 0)) / top + "%";
          return el("td", { class: "bar", title: fmt(measureOf(g, m), m) }, bar);
        }
        return el("td", { text: fmt(measureOf(g, m), m) });
      });
      const row = el("tr", { "data-drill": label(value) }, el("td", { class: "clip", text: label(value) }), ...cells);
      row.addEventListener("click", () => drill(data, panel, value, null));
      body.append(row);
    }
    table.append(body);
    box.append(groups.length ? table : el("p", { class: "dim", text: "No events in this range." }));
    leftOut(box, data);
  }

  // A panel shows its largest groups: how many it left out.
  function leftOut(box, data) {
    const n = data.stats.groups_left_out;
    if (n) box.append(el("p", { class: "dim", text: `and ${n.toLocaleString()} smaller group(s) not shown` }));
  }

  function drawPlot(box, panel, data, now) {
    const groups = data.stats.groups;
    if (!groups.length || !window.uPlot) {
      box.append(el("p", { class: "dim", text: "No events in this range." }));
      return;
    }
    const width = Math.max(box.clientWidth - 16, 260);
    let xs, series, columns;
    if (panel.view === "scatter") {
      const points = groups.map((g) => [measureOf(g, panel.measures[0]), measureOf(g, panel.measures[1]), groupOf(panel, g)])
        .filter((p) => p[0] != null).sort((a, b) => a[0] - b[0]);
      xs = points.map((p) => p[0]);
      columns = [points.map((p) => p[1])];
      series = [{ label: panel.measures[1], stroke: colours[0], paths: () => null, points: { show: true, size: 9 } }];
      box.append(el("div", { class: "dim", text: points.map((p) => `${label(p[2])}: ${fmt(p[0])}, ${fmt(p[1])}`).join(" · ") }));
    } else {
      const bucket = data.query.group_by.split(",")[0];
      xs = [...new Set(groups.map((g) => seconds(g.key[bucket])))].sort((a, b) => a - b);
      // Every bucket of the range, those without events too: a line falls to 0 there
      // (a count or a sum) or breaks (a rate), rather than running straight across.
      const step = bucketSeconds[bucket];
      const first = data.query.from ? seconds(data.query.from) : xs[0];
      const last = Math.min(seconds(data.query.to || now), xs[xs.length - 1] + 1000 * step);
      let lo = xs[0];
      while (lo - step >= first) lo -= step;
      const all = [];
      for (let x = lo; x < last || x <= xs[xs.length - 1]; x += step) all.push(x);
      xs = all;
      const keys = [...new Set(groups.map((g) => label(groupOf(panel, g))))];
      series = [];
      columns = [];
      for (const m of panel.measures) {
        for (const k of keys) {
          const at = new Map(groups.filter((g) => label(groupOf(panel, g)) === k).map((g) => [seconds(g.key[bucket]), measureOf(g, m)]));
          const colour = colours[series.length % colours.length];
          series.push({ label: panel.group_by ? `${m} ${k}` : m, stroke: colour, width: 2, fill: panel.view === "area" ? colour + "33" : undefined, points: { show: xs.length < 60 } });
          columns.push(xs.map((x) => (at.has(x) ? at.get(x) : valueOf(null, m))));
        }
      }
    }
    const bucketSize = bucketSeconds[(data.query.group_by || "").split(",")[0]] || 0;
    const span = [data.query.from ? seconds(data.query.from) : xs[0],
      Math.max(seconds(data.query.to || now), xs[xs.length - 1] + bucketSize)];
    const plot = new uPlot({
      width, height: 200, legend: { show: true },
      // Over time, the range asked for: a lone point must not leave uPlot to pick years.
      scales: { x: panel.view === "scatter" ? { time: false } : { time: true, range: () => span } },
      cursor: { points: { size: 7 } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"), // as every time on the site
      series: [{ label: panel.view === "scatter" ? panel.measures[0] : "time" }, ...series],
      axes: [{}, { size: 60, values: (u, ticks) => ticks.map((v) => (panel.measures[0] === "cost" ? dollars(v) : v.toLocaleString())) }],
    }, [xs, ...columns], box);
    plot.over.addEventListener("click", () => {
      const i = plot.cursor.idx;
      if (i == null) return;
      if (panel.view === "scatter") {
        const g = groups.find((x) => measureOf(x, panel.measures[0]) === xs[i]);
        drill(data, panel, g ? groupOf(panel, g) : null, null);
      } else drill(data, panel, null, xs[i]);
    });
    leftOut(box, data);
  }

  function panelBox(panel, i) {
    const box = el("section", { class: `panel w${panel.width || 1}`, "data-panel": panel.id });
    if (mayWrite) {
      const tool = (text, act) => el("button", { type: "button", text, onclick: (e) => { e.stopPropagation(); act(); } });
      box.append(el("span", { class: "tools" },
        tool("edit", () => openEditor(i)),
        tool("copy", () => { spec.panels.splice(i + 1, 0, { ...structuredClone(panel), id: Math.random().toString(16).slice(2, 10) }); touch(); }),
        tool("↑", () => { if (i > 0) { spec.panels.splice(i - 1, 0, spec.panels.splice(i, 1)[0]); touch(); } }),
        tool("↓", () => { if (i < spec.panels.length - 1) { spec.panels.splice(i + 1, 0, spec.panels.splice(i, 1)[0]); touch(); } }),
        tool("↔", () => { panel.width = ((panel.width || 1) % 3) + 1; touch(); }),
        tool("✕", () => { spec.panels.splice(i, 1); $("panel-editor").hidden = true; touch(); })));
    }
    box.append(el("h3", { text: panel.title || panel.measures.join(", ") }));
    return box;
  }

  let drawing = 0;
  async function draw() {
    const mine = ++drawing;
    const drawn = structuredClone(spec);
    let data;
    try {
      if (shared) data = await (await fetch(shared + "/data")).json();
      else if (!dirty) data = await api("GET", `/api/v1/boards/${board.id}/data`);
      else data = await api("POST", "/api/v1/boards/preview", { name: board.name, spec: drawn });
    } catch (error) {
      status(String(error.message));
      return;
    }
    if (mine !== drawing) return; // a newer draw is on its way
    const panels = $("panels");
    panels.replaceChildren();
    drawn.panels.forEach((_, i) => {
      const panel = spec.panels[i];
      const box = panelBox(panel, i);
      panels.append(box);
      const d = data.panels[i];
      if (panel.view === "number") drawNumber(box, panel, d);
      else if (panel.view === "histogram") drawHistogram(box, panel, d);
      else if (panel.view === "table" || panel.view === "bars") drawTable(box, panel, d, panel.view === "bars");
      else drawPlot(box, panel, d, data.now);
    });
    app.dataset.drawn = String(spec.panels.length);
  }

  // -- the panel editor ---------------------------------------------------------------------
  const option = (value, text, selected) => el("option", { value, selected: !!selected, text: text ?? value });
  const select = (name, options, current) => el("select", { name }, ...options.map(([v, t]) => option(v, t, v === (current ?? ""))));

  async function loadFields() {
    if (!fields) fields = await api("GET", "/api/v1/boards/fields");
    return fields;
  }

  // Filters picked from what exists: a field, then one of its values (with counts). Changes
  // `owner.filters` and calls `changed`. Its own element (not a form), so the panel form's
  // change handler does not see its selects.
  function filterPicker(owner, changed) {
    const f = fields;
    // The fields whose values the picker can list ("user" is the attribute attributes.user;
    // api and sdk are kept by the events alone, not offered).
    const names = [...choices.group_bys.filter((g) => g in f).concat(["user"]), ...f.attributes.map((a) => `attributes.${a.key}`)];
    const filterName = (name) => choices.aliases[name] || name;
    const which = select("filter_field", [["", "(field)"], ...names.map((x) => [x, x])], "");
    const value = el("select", { name: "filter_value" });
    which.addEventListener("change", async () => {
      const name = filterName(which.value);
      let values = [], more = 0;
      if (name.startsWith("attributes.")) ({ values, left_out: more } = await api("GET", "/api/v1/boards/fields", undefined, { key: name.slice(11) }));
      else if (name) [values, more] = [f[name] || [], f[`${name}_left_out`] || 0];
      const listed = values.filter((v) => v.value != null).map((v) => option(String(v.value), `${v.value} (${v.count})`));
      // The most frequent are listed: say how many others there are.
      if (more) listed.push(el("option", { disabled: true, value: "", text: `… ${more.toLocaleString()} less frequent not listed` }));
      value.replaceChildren(...listed);
    });
    const add = () => {
      if (!which.value || !value.value) return;
      owner.filters = { ...(owner.filters || {}), [filterName(which.value)]: value.value };
      changed();
    };
    return el("div", { class: "filter-picker" },
      el("label", {}, "filter ", which, value, el("button", { type: "button", text: "add filter", onclick: add })),
      el("ul", { class: "filters-list" }, ...Object.entries(owner.filters || {}).map(([k, v]) =>
        el("li", {}, `${k} = ${v} `, el("button", { type: "button", text: "remove", onclick: () => { delete owner.filters[k]; changed(); } })))));
  }

  async function openEditor(i) {
    const panel = spec.panels[i];
    const f = await loadFields();
    const box = $("panel-editor");
    box.hidden = false;
    const groupOptions = [["", "(no group)"], ...choices.group_bys.map((g) => [g, `${g} (${(f[g] || []).length} values)`]),
      ...f.attributes.map((a) => [`attributes.${a.key}`, `attribute ${a.key} (${a.values} values)`])];
    const form = el("form", {},
      el("h3", { text: "Panel" }),
      el("label", {}, "title ", el("input", { name: "title", value: panel.title || "", maxlength: "200" })),
      el("label", {}, "measures ", el("select", { name: "measures", multiple: true },
        ...Object.keys(choices.measures).map((m) => option(m, m, panel.measures.includes(m))))),
      el("label", {}, "view ", select("view", choices.views.map((v) => [v, v]), panel.view)),
      el("label", {}, "group by ", select("group_by", groupOptions, panel.group_by || "")),
      el("label", {}, "range ", select("range", [["", "the board's"], ...choices.ranges.map((r) => [r, r])], panel.time_range ? panel.time_range.last : "")),
      el("label", {}, "bucket ", select("bucket", [["", "the board's"], ...choices.buckets.map((b) => [b, b])], panel.bucket || "")));
    // By name through form.elements: a form's own properties (title...) hide its fields.
    const field = (name) => form.elements.namedItem(name);
    form.addEventListener("change", () => {
      const measures = [...field("measures").selectedOptions].map((o) => o.value);
      Object.assign(panel, { title: field("title").value, measures: measures.length ? measures : panel.measures, view: field("view").value });
      for (const k of ["group_by", "bucket"]) { if (field(k).value) panel[k] = field(k).value; else delete panel[k]; }
      if (field("range").value) panel.time_range = { last: field("range").value }; else delete panel.time_range;
      touch();
    });
    box.replaceChildren(form, filterPicker(panel, () => { touch(); openEditor(i); }),
      el("button", { type: "button", text: "Close", onclick: () => { box.hidden = true; } }));
  }

  // -- the board's tools --------------------------------------------------------------------
  if (mayWrite) {
    const range = $("board-range");
    range.replaceChildren(...choices.ranges.map((r) => option(r, r, spec.time_range.last === r)));
    range.addEventListener("change", () => { spec.time_range = { last: range.value }; touch(); });
    const boardFilters = async () => {
      await loadFields();
      $("board-filters").replaceChildren(filterPicker(spec, () => { touch(); boardFilters(); }));
    };
    boardFilters();
    // The tools show the spec in force: after another version is put in its place, its range,
    // its filters (a picker bound to the old spec had added to that one) and its name.
    const syncTools = (name) => {
      range.replaceChildren(...choices.ranges.map((r) => option(r, r, spec.time_range.last === r)));
      boardFilters();
      $("panel-editor").hidden = true;
      $("board-name").value = name;
    };
    $("board-name").addEventListener("input", () => { dirty = true; status("unsaved changes"); });
    $("board-template").addEventListener("change", () => { dirty = true; status("unsaved changes"); });
    $("add-panel").addEventListener("click", () => {
      spec.panels.push({ id: Math.random().toString(16).slice(2, 10), title: "New panel", measures: ["requests"], view: "line" });
      touch();
      openEditor(spec.panels.length - 1);
    });
    $("save-board").addEventListener("click", async () => {
      try {
        const saved = await api("PUT", `/api/v1/boards/${board.id}`, { name: $("board-name").value, spec, is_template: $("board-template").checked });
        dirty = false;
        $("board-title").textContent = saved.name;
        $("board-version").textContent = saved.version;
        status(`saved as version ${saved.version}`);
      } catch (error) { status(error.message); }
    });
    $("show-versions").addEventListener("click", async () => {
      const box = $("versions");
      const { versions } = await api("GET", `/api/v1/boards/${board.id}/versions`);
      box.hidden = false;
      box.replaceChildren(el("h3", { text: "Versions" }), el("table", { class: "events" }, el("tbody", {}, ...versions.map((v) =>
        el("tr", { "data-version": v.version }, el("td", { text: `version ${v.version}` }), el("td", { text: v.name }), el("td", { text: v.saved_by || "" }), el("td", { text: v.saved_at.slice(0, 19).replace("T", " ") }),
          el("td", {}, el("button", { type: "button", text: "view", onclick: async () => {
            const old = await api("GET", `/api/v1/boards/${board.id}/versions/${v.version}`);
            spec = old.spec; syncTools(old.name); touch(); status(`viewing version ${v.version} (unsaved)`);
          } }), el("button", { type: "button", text: "restore", onclick: async () => {
            await api("POST", `/api/v1/boards/${board.id}/restore`, { version: v.version });
            dirty = false; window.location.reload();
          } })))))));
    });
    $("publish-board").addEventListener("click", async () => {
      const days = $("publish-days").value;
      const body = days ? { expires_in_days: Number(days) } : {};
      if ($("publish-bodies").checked) body.allow_bodies = true;
      try {
        const link = await api("POST", `/api/v1/boards/${board.id}/shares`, body);
        const url = new URL(link.url, window.location.href).toString();
        $("publish-result").hidden = false;
        $("publish-result").replaceChildren("Read-only link (shown once): ", el("code", { id: "share-link", "data-copy": "", text: url }));
      } catch (error) { status(error.message); }
    });
  }
  draw();
});
