// Live staff pages: one EventSource on /api/v1/events (the session cookie signs it in) instead of
// polling. An element that shows a client's data declares data-live-client="<client id>" (or "*")
// and hx-trigger="live-event"; an event about that client makes htmx fetch it again, so the
// server keeps rendering everything and the browser only learns *when*.
(function () {
  "use strict";
  const TYPES = ["message.created", "message.read", "delivery.updated", "message.reply_overdue"];
  let source = null;
  const due = new Set(); // client ids ("*": all) with news not yet fetched
  let timer = null;

  function watched() {
    return document.querySelectorAll("[data-live-client]");
  }

  function schedule(clientId) {
    due.add(clientId);
    // Coalesce a burst (a send writes the message, then its deliveries move on) into one fetch.
    if (timer === null) timer = setTimeout(flush, 100);
  }

  function flush() {
    timer = null;
    const ids = new Set(due);
    due.clear();
    watched().forEach(function (element) {
      const wanted = element.dataset.liveClient;
      if (!(ids.has("*") || wanted === "*" || ids.has(wanted))) return;
      if (element.classList.contains("htmx-request")) {
        // A fetch is in flight and its answer will replace this element, dropping any request
        // queued on it: ask again once it has landed.
        schedule(wanted);
      } else {
        htmx.trigger(element, "live-event");
      }
    });
  }

  function connect() {
    if (source !== null || watched().length === 0 || typeof EventSource === "undefined") return;
    source = new EventSource("/api/v1/events");
    TYPES.forEach(function (type) {
      source.addEventListener(type, function (event) {
        try {
          schedule(JSON.parse(event.data).client_id);
        } catch (error) {
          // not JSON: nothing to refresh
        }
      });
    });
    // Resumed from too old a point: some events are gone, so refresh everything shown.
    source.addEventListener("stream.reset", function () {
      schedule("*");
    });
    source.addEventListener("stream.closed", function () {
      source.close(); // signed out or lost the permission: the next page load decides
      source = null;
    });
  }

  document.addEventListener("DOMContentLoaded", connect);
  document.addEventListener("htmx:load", connect); // a drawer or panel opened later
})();
