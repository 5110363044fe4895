// A job's page, live: polls its state once a second and updates the progress in place.
// Without JavaScript the page refreshes itself instead (<noscript> meta refresh).
(function () {
  "use strict";
  var box = document.querySelector("[data-job-progress]");
  if (!box || box.getAttribute("data-finished") === "1") return;
  var url = box.getAttribute("data-job-state-url");
  function number(n) { return Number(n).toLocaleString("en-US"); }
  function set(name, text) {
    var el = box.querySelector("[data-field='" + name + "']");
    if (el) el.textContent = text;
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (state) {
        if (!state) { setTimeout(poll, 3000); return; }
        set("status_label", state.status_label);
        set("processed", number(state.processed));
        set("total", number(state.total));
        set("percent", state.percent);
        set("revoked", number(state.revoked));
        set("skipped", number(state.skipped));
        var bar = box.querySelector("[data-field='bar']");
        if (bar) { bar.value = state.percent; bar.textContent = state.percent + "%"; }
        if (state.finished) { location.reload(); } else { setTimeout(poll, 1000); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
