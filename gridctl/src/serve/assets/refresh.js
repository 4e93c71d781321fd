// gridctl serve: with JavaScript on, the page's <main> refreshes itself every few
// seconds (pages work without it; they just stay as loaded). No inline script is used,
// so the Content-Security-Policy can forbid them all.
(function () {
  var every = 5000;
  function refresh() {
    if (document.visibilityState !== "visible") { return schedule(); }
    fetch(location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var next = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        var main = document.querySelector("main");
        if (next && main) { main.replaceWith(next); }
        document.body.dataset.refreshed = String(Date.now());
        measure();
      })
      .catch(function () {})
      .then(schedule);
  }
  function schedule() { setTimeout(refresh, every); }
  // How wide the page lays out, for checks of narrow screens (tests/dashboard.rs).
  function measure() {
    document.body.dataset.scrollWidth = String(document.documentElement.scrollWidth);
    document.body.dataset.viewWidth = String(window.innerWidth);
  }
  window.addEventListener("load", measure);
  // Buttons that cannot be undone ask first.
  document.addEventListener("submit", function (e) {
    var ask = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (ask && !window.confirm(ask)) { e.preventDefault(); }
  });
  schedule();
})();
