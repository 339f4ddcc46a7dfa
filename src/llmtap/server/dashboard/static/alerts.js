// The alerts page's small charts: each rule's measure per time bucket (uPlot), with its
// threshold as a second line when the rule compares against a value.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("alert-charts");
  if (!source || !window.uPlot) return;
  const charts = JSON.parse(source.textContent);
  for (const box of document.querySelectorAll(".alert-chart[data-index]")) {
    const chart = charts[Number(box.dataset.index)];
    if (!chart || !chart.t.length) {
      box.textContent = "no events lately";
      box.className += " dim";
      continue;
    }
    const data = [chart.t, chart.v];
    const series = [{}, { label: "value", stroke: "#3b5bdb", width: 2 }];
    if (chart.threshold !== null) {
      data.push(chart.t.map(() => chart.threshold));
      series.push({ label: chart.threshold_label, stroke: "#c92a2a", width: 1, dash: [4, 4] });
    }
    const options = {
      width: 260, height: 70, legend: { show: false }, cursor: { show: false },
      scales: { x: { time: true } }, axes: [{ show: false }, { size: 40 }], series,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    };
    new uPlot(options, data, box);
  }
});
