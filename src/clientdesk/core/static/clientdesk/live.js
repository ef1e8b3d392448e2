// Live staff pages: one EventSource on /api/v1/events (the session cookie signs it in) instead of
// polling. An element that shows a client's data declares data-live-client="<client id>" (or "*")
// and hx-trigger="live-event"; an event about that client makes htmx fetch it again, so the
// server keeps rendering everything and the browser only learns *when*.
(function () {
  "use strict";
  const TYPES = ["message.created", "message.read", "delivery.updated", "message.reply_overdue"];
  let source = null;
  const due = new Set();
  let timer = null;

  function watched() {
    return document.querySelectorAll("[data-live-client]");
  }

  // Coalesce a burst (a send writes the message, then its deliveries move on) into one refetch.
  function refresh(clientId) {
    watched().forEach(function (element) {
      const wanted = element.dataset.liveClient;
      if (wanted === "*" || wanted === clientId) due.add(element);
    });
    if (timer === null) {
      timer = setTimeout(function () {
        timer = null;
        due.forEach(function (element) {
          if (document.contains(element)) htmx.trigger(element, "live-event");
        });
        due.clear();
      }, 100);
    }
  }

  function connect() {
    if (source !== null || watched().length === 0 || typeof EventSource === "undefined") return;
    source = new EventSource("/api/v1/events");
    TYPES.forEach(function (type) {
      source.addEventListener(type, function (event) {
        try {
          refresh(JSON.parse(event.data).client_id);
        } catch (error) {
          // not JSON: nothing to refresh
        }
      });
    });
    // Resumed from too old a point: some events are gone, so refresh everything shown.
    source.addEventListener("stream.reset", function () {
      refresh("*");
    });
    source.addEventListener("stream.closed", function () {
      source.close(); // signed out or lost the permission: the next page load decides
      source = null;
    });
  }

  document.addEventListener("DOMContentLoaded", connect);
  document.addEventListener("htmx:load", connect); // a drawer or panel opened later
})();
