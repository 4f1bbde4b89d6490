// The live tail of a transcript: new and changed messages, typing and processing state, read
// from the admin's own event stream (the staff session authorises it; no API key here).
(function () {
  "use strict";
  var box = document.getElementById("live");
  if (!box || !window.EventSource) return;
  var transcript = document.querySelector(".transcript");
  var state = box.querySelector(".live-state");
  var typing = box.querySelector(".live-typing");
  var processing = box.querySelector(".live-processing");
  var typers = {};

  function text(el, value) { el.textContent = value == null ? "" : String(value); return el; }
  function make(tag, cls) { var el = document.createElement(tag); if (cls) el.className = cls; return el; }

  // `html` is the server's sanitised Markdown of the text (the same renderer as the page).
  function body(m) {
    var el = make("div", "block text md");
    if (m.html != null) el.innerHTML = m.html; else text(el, m.text);
    return el;
  }

  function render(m) {
    var msg = make("div", "msg msg-" + m.role + " msg-live");
    msg.id = "m" + m.seq;
    var head = make("div", "msg-head");
    head.appendChild(text(make("span", "badge role-" + m.role), m.role));
    head.appendChild(text(make("span", "text-secondary"), " #" + m.seq + " · " + m.created_at.replace("T", " ").slice(0, 19)));
    if (m.status && m.status !== "sent") head.appendChild(text(make("span", "badge bg-red-lt"), m.status));
    msg.appendChild(head);
    msg.appendChild(body(m));
    msg.appendChild(text(make("div", "block text pre raw"), m.text + (m.truncated ? " …" : "")));
    return msg;
  }

  function showTyping() {
    var now = Date.now(), names = [];
    for (var u in typers) { if (typers[u] > now) names.push(u); else delete typers[u]; }
    text(typing, names.length ? names.join(", ") + (names.length > 1 ? " are" : " is") + " typing…" : "");
  }

  var source = new EventSource(box.getAttribute("data-events-url"));
  source.onopen = function () { text(state, "live"); box.classList.remove("is-down"); };
  source.onerror = function () { text(state, "reconnecting…"); box.classList.add("is-down"); };
  source.addEventListener("message.created", function (e) {
    var m = JSON.parse(e.data);
    if (document.getElementById("m" + m.seq)) return;
    var empty = transcript.querySelector(".text-secondary:only-child");
    if (empty) empty.remove();
    transcript.appendChild(render(m));
  });
  source.addEventListener("message.updated", function (e) {
    var m = JSON.parse(e.data), el = document.getElementById("m" + m.seq);
    if (!el) return;
    if (m.deleted) { el.classList.add("msg-deleted"); return; }
    el.classList.remove("msg-deleted");
    if (!el.classList.contains("msg-live")) return;
    var md = el.querySelector(".block.text.md"), raw = el.querySelector(".block.text.raw");
    if (md) md.replaceWith(body(m));
    if (raw) text(raw, m.text);
  });
  source.addEventListener("typing", function (e) {
    var t = JSON.parse(e.data);
    typers[t.user_id] = Date.now() + 5000;
    showTyping();
    setTimeout(showTyping, 5100);
  });
  source.addEventListener("processing", function (e) {
    var p = JSON.parse(e.data);
    text(processing, p.status === "completed" ? "" : "AI " + p.status + " (message " + p.message_id + ")");
  });
  source.addEventListener("reset", function () { window.location.reload(); });
})();
