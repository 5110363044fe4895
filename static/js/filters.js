// The Advanced filter's API and App lists, enhanced: typing in the search box above a
// list hides the options that do not match, and says how many are shown. Without
// JavaScript the search box stays hidden (class js-only-block) and every option shows.
(function () {
  "use strict";
  var boxes = document.querySelectorAll("[data-choice-search]");
  Array.prototype.forEach.call(boxes, function (box) {
    var list = document.getElementById(box.getAttribute("aria-controls"));
    var shown = document.getElementById(box.getAttribute("aria-describedby"));
    if (!list) return;
    var options = Array.prototype.slice.call(list.querySelectorAll("[data-choice]"));

    function narrow() {
      var words = box.value.trim().toLowerCase();
      var count = 0;
      options.forEach(function (option) {
        var match = !words || option.textContent.toLowerCase().indexOf(words) !== -1;
        option.hidden = !match;
        if (match) count += 1;
      });
      if (shown) {
        shown.textContent = words ? count + " of " + options.length + " shown" : "";
      }
    }

    box.addEventListener("input", narrow);
    // Enter in the search box would submit the whole filter form: here it only narrows.
    box.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        narrow();
      }
    });
    // The browser may restore the typed words on Back.
    if (box.value) narrow();
  });
})();
