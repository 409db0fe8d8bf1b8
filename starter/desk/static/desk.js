// The desk's only script, ours (no framework, nothing from a CDN). It fills the browser's time zone in at
// sign-in, and keeps each [data-live] part of a page current: the server's event stream says what
// changed, and the part is fetched again and swapped in, keeping the keyboard focus where it was.
(function () {
  "use strict";

  var signin = document.querySelector("[data-signin] input[name=tz]");
  if (signin && (!signin.value || signin.value === "UTC") && window.Intl) {
    signin.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  }

  var focusTarget = document.querySelector("[data-autofocus]");
  if (focusTarget) { focusTarget.focus(); }

  var live = document.querySelector("[data-live]");
  if (!live || !window.EventSource || !window.fetch) { return; }
  var status = document.getElementById("live-status");
  var ticket = live.getAttribute("data-ticket");
  var busy = false, again = false;

  // `announce`: a change the server told of (said in the status line, which screen readers read out);
  // the periodic redraw of relative times says nothing.
  function refresh(announce) {
    if (busy) { again = true; return; }
    busy = true;
    fetch(live.getAttribute("data-live-url"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var focused = document.activeElement && live.contains(document.activeElement) ? document.activeElement.id : null;
        live.innerHTML = html;
        if (focused) {
          var refocus = document.getElementById(focused);
          if (refocus) { refocus.focus(); }
        }
        var counted = live.querySelector("[data-counts]");
        if (counted) {
          var counts = JSON.parse(counted.getAttribute("data-counts"));
          document.querySelectorAll("[data-count-line]").forEach(function (element) {
            element.textContent = counts[element.getAttribute("data-count-line")] || 0;
          });
        }
        if (status && announce) { status.textContent = "Updated at " + new Date().toLocaleTimeString(); }
      })
      .catch(function () { if (status) { status.textContent = "Cannot reach the desk; retrying"; } })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(true); }
      });
  }

  var source = new EventSource(live.getAttribute("data-events") + "?after=" + live.getAttribute("data-version"));
  source.addEventListener("changed", function (event) {
    var data = JSON.parse(event.data);
    if (ticket && data.tickets.indexOf(ticket) < 0) { return; }
    refresh(true);
  });
  // Relative times ("in 4 min") age: redraw now and then even when nothing changed.
  setInterval(function () { refresh(false); }, 30000);
})();
