// Runs before the page renders: marks that JavaScript is on, so tabbed screens show one
// pane at a time (without JavaScript they show every pane, one below the other).
document.documentElement.classList.add("js");
