// Progressive enhancement only: every screen works without this file.
(function () {
  "use strict";

  // Tabs: links to in-page sections; with JavaScript, one section shows at a time.
  document.querySelectorAll("[data-portal-tabs]").forEach(function (tabList) {
    var tabs = Array.prototype.slice.call(tabList.querySelectorAll("[role=tab]"));
    function show(tab, focus) {
      tabs.forEach(function (other) {
        var selected = other === tab;
        other.classList.toggle("active", selected);
        other.setAttribute("aria-selected", selected ? "true" : "false");
        other.tabIndex = selected ? 0 : -1;
        var pane = document.getElementById(other.getAttribute("aria-controls"));
        if (pane) pane.classList.toggle("active", selected);
      });
      if (focus) tab.focus();
    }
    tabs.forEach(function (tab, index) {
      tab.addEventListener("click", function (event) {
        event.preventDefault();
        show(tab, false);
        history.replaceState(null, "", "#" + tab.getAttribute("aria-controls"));
      });
      tab.addEventListener("keydown", function (event) {
        var step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
        if (step) show(tabs[(index + step + tabs.length) % tabs.length], true);
      });
    });
    var fromHash = tabs.filter(function (tab) {
      return "#" + tab.getAttribute("aria-controls") === location.hash;
    })[0];
    // A pane holding a form error is shown first, so the error is never hidden.
    var withError = tabs.filter(function (tab) {
      var pane = document.getElementById(tab.getAttribute("aria-controls"));
      return pane && pane.querySelector(".is-invalid, .invalid-feedback, .alert-danger");
    })[0];
    show(withError || fromHash || tabs[0], false);
  });

  // Copy buttons (the new token's secret).
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy-target"));
      var text = source.value !== undefined ? source.value : source.textContent;
      function done(ok) {
        var label = button.querySelector("[data-copy-label]") || button;
        label.textContent = ok ? "Copied" : "Select and copy it by hand";
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text.trim()).then(function () { done(true); }, function () { done(false); });
      } else {
        if (source.select) { source.select(); }
        try { done(document.execCommand("copy")); } catch (e) { done(false); }
      }
    });
  });

  // Extra Fields: add and remove rows without a round trip.
  document.querySelectorAll("[data-extra-fields]").forEach(function (box) {
    var prefix = box.getAttribute("data-prefix");
    var total = box.querySelector("input[name='" + prefix + "-TOTAL_FORMS']");
    var template = box.querySelector("template");
    var body = box.querySelector("[data-extra-rows]");
    function wire(row) {
      var remove = row.querySelector("[data-remove-row]");
      if (!remove) return;
      remove.addEventListener("click", function (event) {
        event.preventDefault();
        var checkbox = row.querySelector("input[type=checkbox][name$='-DELETE']");
        if (checkbox) checkbox.checked = true;
        row.classList.add("removed");
      });
    }
    body.querySelectorAll(".extra-row").forEach(wire);
    var add = box.querySelector("[data-add-row]");
    if (add && template && total) {
      add.addEventListener("click", function (event) {
        event.preventDefault();
        var index = parseInt(total.value, 10) || 0;
        var html = template.innerHTML.replace(/__prefix__/g, String(index));
        body.insertAdjacentHTML("beforeend", html);
        total.value = String(index + 1);
        var row = body.lastElementChild;
        wire(row);
        var first = row.querySelector("input[type=text]");
        if (first) first.focus();
      });
    }
  });

  // New access token: preview the chosen app's subscriptions in the APIs and Plans selects.
  var subscriptionsData = document.getElementById("app-subscriptions");
  var appSelect = document.getElementById("id_app");
  var useSubscriptions = document.getElementById("id_use_subscriptions");
  if (subscriptionsData && appSelect) {
    var subscriptions = JSON.parse(subscriptionsData.textContent);
    var apply = function () {
      if (useSubscriptions && !useSubscriptions.checked) return;
      var plans = subscriptions[appSelect.value] || {};
      document.querySelectorAll("select[data-api-id]").forEach(function (select) {
        var plan = plans[select.getAttribute("data-api-id")];
        select.value = plan ? String(plan) : "";
      });
    };
    var lock = function () {
      var locked = useSubscriptions && useSubscriptions.checked;
      document.querySelectorAll("select[data-api-id]").forEach(function (select) {
        select.disabled = locked;
      });
      apply();
    };
    appSelect.addEventListener("change", apply);
    if (useSubscriptions) useSubscriptions.addEventListener("change", lock);
    lock();
  }
})();

// A relative time's exact-time tooltip (portal.css, |when_relative) can be dismissed with
// Escape without moving the focus or the pointer (WCAG 1.4.13); it comes back next time.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var time = document.activeElement;
    if (time && time.classList && time.classList.contains("when-relative")) {
      time.classList.add("when-dismissed");
    }
  });
  document.addEventListener("focusout", function (event) {
    var time = event.target;
    if (time && time.classList && time.classList.contains("when-relative")) {
      time.classList.remove("when-dismissed");
    }
  });
})();
