// Django admin: a table that scrolls sideways (a tabular inline, a wide change list) can
// be reached and scrolled with the keyboard (WCAG 2.1.1; axe's scrollable-region-focusable).
(function () {
  "use strict";
  function label(region) {
    var heading = region.querySelector("h2, caption");
    return heading ? heading.textContent.trim() : "Scrollable table";
  }
  function mark() {
    document.querySelectorAll(".inline-group, .results, .module").forEach(function (region) {
      if (region.hasAttribute("tabindex") || region.scrollWidth <= region.clientWidth) return;
      region.setAttribute("tabindex", "0");
      region.setAttribute("role", "region");
      region.setAttribute("aria-label", label(region));
      region.setAttribute("data-scroll-region", "");
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mark);
  } else {
    mark();
  }
  window.addEventListener("resize", mark);
})();
