// Starts ReDoc on /redoc from a file of ours, so the page needs no inline script.
"use strict";
(function () {
  var root = document.getElementById("redoc");
  Redoc.init(root.getAttribute("data-openapi-url"), { hideDownloadButton: false }, root);
})();
