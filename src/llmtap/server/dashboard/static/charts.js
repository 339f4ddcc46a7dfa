// Overview charts: uPlot (from npm, vendored by `make setup`) over the series the page embeds
// as JSON. A click on a point opens the events of that time bucket.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("series");
  if (!source || !window.uPlot) return;
  const series = JSON.parse(source.textContent);
  const colours = ["#3b5bdb", "#c92a2a", "#2b8a3e", "#e67700"];
  const project = document.querySelector(".charts[data-project]").dataset.project;
  const iso = (seconds) => new Date(seconds * 1000).toISOString();
  const dollars = (v) => (Math.abs(v) >= 1 ? "$" + v.toFixed(2) : v === 0 ? "$0" : "$" + Number(v.toPrecision(2)).toString());

  for (const box of document.querySelectorAll(".chart[data-chart]")) {
    const names = box.dataset.chart.split(",");
    const title = document.createElement("div");
    title.className = "chart-title";
    title.textContent = box.dataset.title;
    box.appendChild(title);
    if (!series.t.length) {
      const empty = document.createElement("p");
      empty.className = "dim";
      empty.textContent = "No events in this range.";
      box.appendChild(empty);
      continue;
    }
    const options = {
      width: Math.max(box.clientWidth - 16, 300),
      height: 180,
      legend: { show: true },
      scales: { x: { time: true, range: () => series.x_range } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"), // as every time on the site
      cursor: { points: { size: 7 } },
      series: [{}, ...names.map((name, i) => ({
        label: name.replace("_", " "), stroke: colours[i % colours.length], width: 2,
        points: { show: series.t.length < 60, size: 6 },
      }))],
      // Costs of a fraction of a cent: uPlot's own labels (3 decimals) read "0, 0, 0".
      axes: [{}, { size: 60, values: (u, ticks) => ticks.map((v) => (names.includes("cost") ? dollars(v) : v.toLocaleString())) }],
    };
    const plot = new uPlot(options, [series.t, ...names.map((n) => series[n])], box);
    plot.over.addEventListener("click", () => {
      const i = plot.cursor.idx;
      if (i == null) return;
      const from = series.t[i], to = from + series.bucket_seconds[i];
      const params = new URLSearchParams({ project, from: iso(from), to: iso(to) });
      window.location.href = "/events?" + params.toString();
    });
  }
});
