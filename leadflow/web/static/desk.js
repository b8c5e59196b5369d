// The desk's few behaviours that are not htmx attributes: live countdowns, drag and drop on the pipeline, charts.
// Loaded as a file (the Content-Security-Policy allows no inline script); everything works without it, only less
// live: forms post and pages reload.
(function () {
  "use strict";
  // The server's clock, so a countdown is right even when the laptop's clock is not.
  var skew = 0;
  var serverNow = document.body && document.body.getAttribute("data-now");
  if (serverNow) { skew = Date.parse(serverNow) - Date.now(); }

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clockText(seconds) {
    var s = Math.abs(Math.round(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), rest = s % 60;
    var text = (h ? h + ":" + pad(m) : m) + ":" + pad(rest);
    return seconds < 0 ? "−" + text : text;
  }

  // A countdown to the first-contact deadline: neutral, amber in its last 20 %, red once passed.
  function tick() {
    var now = Date.now() + skew;
    var clocks = document.querySelectorAll(".countdown[data-due]");
    for (var i = 0; i < clocks.length; i++) {
      var el = clocks[i];
      var due = Date.parse(el.getAttribute("data-due"));
      var total = parseFloat(el.getAttribute("data-total")) || 0;
      var left = (due - now) / 1000;
      var value = el.querySelector(".value") || el;
      value.textContent = clockText(left);
      el.classList.toggle("late", left <= 0);
      el.classList.toggle("soon", left > 0 && total > 0 && left <= total * 0.2);
    }
  }
  tick();
  setInterval(tick, 1000);

  // Pipeline: drag a card to a column; the card's own form (a select and a button) is the keyboard's way.
  var dragged = null;
  document.addEventListener("dragstart", function (e) {
    var card = e.target.closest && e.target.closest("[data-lead]");
    if (!card) { return; }
    dragged = card;
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", card.getAttribute("data-lead"));
  });
  document.addEventListener("dragover", function (e) {
    var column = e.target.closest && e.target.closest("[data-status]");
    if (!column || !dragged) { return; }
    e.preventDefault();
    column.classList.add("over");
  });
  document.addEventListener("dragleave", function (e) {
    var column = e.target.closest && e.target.closest("[data-status]");
    if (column) { column.classList.remove("over"); }
  });
  document.addEventListener("drop", function (e) {
    var column = e.target.closest && e.target.closest("[data-status]");
    if (!column || !dragged) { return; }
    e.preventDefault();
    column.classList.remove("over");
    var form = dragged.querySelector("form.move");
    var select = form && form.querySelector("select[name=status]");
    dragged = null;
    if (!select || select.value === column.getAttribute("data-status")) { return; }
    select.value = column.getAttribute("data-status");
    form.requestSubmit();
  });

  // Charts: a canvas with data-chart (JSON: type, labels, datasets) becomes a Chart.js chart.
  function charts(root) {
    if (typeof window.Chart === "undefined") { return; }
    var found = (root || document).querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < found.length; i++) {
      var canvas = found[i];
      if (canvas.chart) { canvas.chart.destroy(); }
      var spec = JSON.parse(canvas.getAttribute("data-chart"));
      canvas.chart = new window.Chart(canvas, {
        type: spec.type || "bar",
        data: { labels: spec.labels, datasets: spec.datasets },
        options: { responsive: true, maintainAspectRatio: false, animation: false,
                   plugins: { legend: { display: spec.datasets.length > 1 } },
                   scales: spec.type === "doughnut" ? {} : { y: { beginAtZero: true, ticks: { precision: 0 } } } }
      });
    }
  }
  document.addEventListener("DOMContentLoaded", function () { charts(document); });
  document.addEventListener("htmx:afterSettle", function (e) { charts(e.target); tick(); });

  // A confirmation a form asks for before it posts (data-confirm), without inline script.
  document.addEventListener("submit", function (e) {
    var ask = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (ask && !window.confirm(ask)) { e.preventDefault(); e.stopPropagation(); }
  }, true);
})();
