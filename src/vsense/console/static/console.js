// The console's only script of its own: charts (uPlot) drawn from the JSON the server
// put on them (`data-series`), and copy buttons. Runs again on every htmx swap.
(function () {
  "use strict";

  function drawChart(el) {
    if (el.dataset.drawn || typeof uPlot === "undefined") return;
    var series = JSON.parse(el.dataset.series);
    var width = Math.max(280, el.clientWidth || 600);
    var options = {
      width: width,
      height: 220,
      series: [{}].concat(series.labels.map(function (label, i) {
        return { label: label, stroke: ["#1557b0", "#a4161a", "#116b2f", "#8a5300", "#6b2fa0"][i % 5], width: 2 };
      })),
      axes: [{}, {}],
      scales: { x: { time: true } },
    };
    el.textContent = "";
    new uPlot(options, [series.x].concat(series.y), el);
    el.dataset.drawn = "1";
  }

  function init(root) {
    root.querySelectorAll("[data-chart]").forEach(drawChart);
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      if (button.dataset.bound) return;
      button.dataset.bound = "1";
      button.addEventListener("click", function () {
        var target = document.getElementById(button.dataset.copy);
        if (target && navigator.clipboard) navigator.clipboard.writeText(target.textContent);
        button.textContent = "Copied";
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (event) { init(event.target); });
})();
