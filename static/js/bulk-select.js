// The list's selection, enhanced: a checkbox for the whole page, a live count, and
// "Select all N matching" offered once the page is selected. Without JavaScript every
// row's checkbox and "Select all N matching" work as plain form fields.
(function () {
  "use strict";
  var form = document.getElementById("bulk-revoke");
  if (!form) return;
  var rows = Array.prototype.slice.call(form.querySelectorAll("[data-select-row]"));
  // The table header's box, and on a phone (where the header is hidden) the bar's.
  var pages = Array.prototype.slice.call(form.querySelectorAll("[data-select-page]"));
  var matchingBox = form.querySelector("[data-select-all-matching]");
  var matching = matchingBox && matchingBox.querySelector("input");
  var count = form.querySelector("[data-bulk-count]");
  if (!rows.length) pages.forEach(function (page) { page.disabled = true; });

  function update() {
    var n = rows.filter(function (row) { return row.checked; }).length;
    var all = rows.length > 0 && n === rows.length;
    pages.forEach(function (page) {
      page.checked = all;
      page.indeterminate = n > 0 && !all;
    });
    if (matchingBox) {
      matchingBox.hidden = !all;
      if (!all && matching) matching.checked = false;
    }
    if (count) {
      if (matching && matching.checked) {
        count.textContent = "Every matching token selected";
      } else {
        count.textContent = n ? n + " selected on this page" : "None selected";
      }
    }
  }
  rows.forEach(function (row) { row.addEventListener("change", update); });
  pages.forEach(function (page) {
    page.addEventListener("change", function () {
      rows.forEach(function (row) { row.checked = page.checked; });
      update();
    });
  });
  if (matching) matching.addEventListener("change", update);
  form.addEventListener("submit", function (event) {
    var any = (matching && matching.checked) || rows.some(function (row) { return row.checked; });
    if (!any) {
      event.preventDefault();
      if (count) count.textContent = "Tick the tokens to revoke first";
    }
  });
  update();
})();
