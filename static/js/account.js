// The user menu and the recovery codes: progressive enhancement only, both work without it.
(function () {
  "use strict";

  // The navbar's user menu is a <details> disclosure: the browser opens it with a click,
  // Enter or Space. Here: Escape closes it (back on its toggle), so do a click or a focus
  // outside it, and the arrow keys move between its items. Its keys stop here, so
  // Bootstrap's dropdown handler (for menus it opens itself) never sees them.
  document.querySelectorAll("[data-user-menu]").forEach(function (menu) {
    var toggle = menu.querySelector("summary");
    function items() {
      return Array.prototype.slice.call(menu.querySelectorAll(".dropdown-item"));
    }
    menu.addEventListener("keydown", function (event) {
      var step = event.key === "ArrowDown" ? 1 : event.key === "ArrowUp" ? -1 : 0;
      if (event.key === "Escape" && menu.open) {
        event.preventDefault();
        event.stopPropagation();
        menu.open = false;
        toggle.focus();
      } else if (step) {
        event.preventDefault();
        event.stopPropagation();
        menu.open = true;
        var list = items();
        var at = list.indexOf(document.activeElement);
        var next = at === -1 ? (step === 1 ? 0 : list.length - 1) : (at + step + list.length) % list.length;
        list[next].focus();
      }
    });
    document.addEventListener("click", function (event) {
      if (menu.open && !menu.contains(event.target)) menu.open = false;
    });
    menu.addEventListener("focusout", function (event) {
      if (menu.open && event.relatedTarget && !menu.contains(event.relatedTarget)) {
        menu.open = false;
      }
    });
  });

  // Recovery codes: copy them all, one per line (the Download link needs no script).
  document.querySelectorAll("[data-copy-codes]").forEach(function (button) {
    var label = button.querySelector("[data-copy-label]") || button;
    var status = document.querySelector("[data-copy-status]");
    button.addEventListener("click", function () {
      var list = document.getElementById(button.getAttribute("data-copy-codes"));
      var text = Array.prototype.map.call(list.querySelectorAll("li"), function (item) {
        return item.textContent.trim();
      }).join("\n") + "\n";
      function done(ok) {
        label.textContent = ok ? "Copied" : "Copy";
        if (status) {
          status.textContent = ok
            ? "The recovery codes are copied."
            : "Copying did not work here: select the codes and copy them by hand, or download them.";
          status.classList.toggle("visually-hidden", ok);
        }
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(false); });
        return;
      }
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "position-fixed top-0 start-0 opacity-0";
      document.body.appendChild(area);
      area.select();
      try { done(document.execCommand("copy")); } catch (e) { done(false); }
      document.body.removeChild(area);
    });
  });
})();
