// The transcript's "Raw text" toggle: message text as written, or as rendered Markdown.
(function () {
  "use strict";
  var button = document.getElementById("raw-toggle");
  var transcript = document.querySelector(".transcript");
  if (!button || !transcript) return;
  function set(raw) {
    transcript.classList.toggle("show-raw", raw);
    button.setAttribute("aria-pressed", raw ? "true" : "false");
    button.classList.toggle("active", raw);
    try { localStorage.setItem("chatadmin.rawText", raw ? "1" : ""); } catch (e) { /* private mode */ }
  }
  var saved = "";
  try { saved = localStorage.getItem("chatadmin.rawText") || ""; } catch (e) { /* private mode */ }
  set(saved === "1");
  button.addEventListener("click", function () { set(!transcript.classList.contains("show-raw")); });
})();
