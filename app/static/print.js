// The credential page's Print button (a file of ours: the site's CSP runs no inline script).
"use strict";
(function () {
  var button = document.getElementById("print-button");
  if (!button) return;
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
})();
