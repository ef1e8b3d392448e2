// Live staff pages: one EventSource on /api/v1/events (the session cookie signs it in) instead of
// polling. An element that shows a client's data declares data-live-client="<client id>" (or "*")
// and hx-trigger="live-event"; an event about that client makes htmx fetch it again, so the
// server keeps rendering everything and the browser only learns *when*. A broadcast's progress
// declares data-live-broadcast="<broadcast id>" the same way (one event per batch).
(function () {
  "use strict";
  const TYPES = ["message.created", "message.read", "delivery.updated", "message.reply_overdue"];
  const BROADCAST_TYPES = ["broadcast.progress"];
  let source = null;
  const due = new Set(); // client ids ("*": all) with news not yet fetched
  let timer = null;

  function watched() {
    return document.querySelectorAll("[data-live-client]");
  }

  function broadcasts() {
    return document.querySelectorAll("[data-live-broadcast]");
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
    const elements = Array.from(watched()).map(function (element) {
      return [element, element.dataset.liveClient];
    }).concat(Array.from(broadcasts()).map(function (element) {
      return [element, "broadcast:" + element.dataset.liveBroadcast];
    }));
    elements.forEach(function ([element, wanted]) {
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

  // The signed-in staff user; their own messages that go unanswered past the due time get a
  // notice on whatever page they are on.
  function me() {
    return document.body ? document.body.dataset.userId || "" : "";
  }

  function noticeOverdue(data) {
    if (!data.sender_id || data.sender_id !== me() || data.direction !== "out") return;
    if (typeof window.clientdeskToast !== "function") return;
    // In the page's time zone (zone.js), like the times the server rendered.
    const due = data.reply_due_at && window.clientdeskTime ? window.clientdeskTime(data.reply_due_at) : "";
    const when = due ? " (due " + due + ")" : "";
    window.clientdeskToast(
      "No reply from " + (data.client_name || "a client") + " yet: your message is overdue" + when + ".",
      "error",
      "overdue-" + data.id
    );
  }

  function connect() {
    if (source !== null || typeof EventSource === "undefined") return;
    if (watched().length === 0 && !me()) return;
    source = new EventSource("/api/v1/events");
    // Says whether the stream is open (for people debugging, and for tests waiting on it).
    source.addEventListener("open", function () {
      document.body.dataset.liveStream = "open";
      // A batch may have finished between the page's rendering and now: look once.
      broadcasts().forEach(function (element) { schedule("broadcast:" + element.dataset.liveBroadcast); });
    });
    source.addEventListener("error", function () { document.body.dataset.liveStream = "reconnecting"; });
    source.addEventListener("message.reply_overdue", function (event) {
      try {
        noticeOverdue(JSON.parse(event.data));
      } catch (error) {
        // not JSON: no notice
      }
    });
    TYPES.forEach(function (type) {
      source.addEventListener(type, function (event) {
        try {
          schedule(JSON.parse(event.data).client_id);
        } catch (error) {
          // not JSON: nothing to refresh
        }
      });
    });
    BROADCAST_TYPES.forEach(function (type) {
      source.addEventListener(type, function (event) {
        try {
          schedule("broadcast:" + JSON.parse(event.data).broadcast_id);
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
