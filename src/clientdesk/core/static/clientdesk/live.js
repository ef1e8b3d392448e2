// Live staff pages: one event stream (/api/v1/events, the session cookie signs it in) per browser
// and user, instead of polling. Browsers give a host six HTTP/1.1 connections across all tabs, so
// a stream per tab (or two on a page) left the seventh tab loading forever. The tabs of one user
// elect a leader with the Web Locks API: the leader holds the one EventSource and relays every
// event to the other tabs on a BroadcastChannel; when it closes, the next tab takes the lock and
// resumes after the last event any tab saw. Without those APIs (an old browser, a page not
// served over HTTPS or from localhost) each tab opens its own stream: still one per page.
//
// Every event reaches the page as a DOM event `clientdesk:live` on document, detail
// `{type, data, id, leader}` (`leader`: this tab holds the stream, so a desktop notification is
// shown once per browser). Parts of a page listen to it rather than opening a stream:
// - an element that shows a client's data declares data-live-client="<client id>" (or "*") and
//   hx-trigger="live-event"; an event about that client makes htmx fetch it again, so the
//   server keeps rendering everything and the browser only learns *when*;
// - a broadcast's progress declares data-live-broadcast="<broadcast id>" the same way;
// - the Messages page (followup/messages.js) and the reply notifications
//   (followup/notifications.js) listen to `clientdesk:live` themselves.
// <body data-live-stream> says "open", "reconnecting" or "closed", in every tab alike.
(function () {
  "use strict";
  const TYPES = ["message.created", "message.read", "delivery.updated", "message.reply_overdue"];
  const BROADCAST_TYPES = ["broadcast.progress"];
  const OTHER_TYPES = ["notification.created", "notification.read", "stream.reset", "stream.closed"];
  const STREAM_URL = "/api/v1/events";
  const due = new Set(); // client ids ("*": all) with news not yet fetched
  let timer = null;
  let started = false;
  let leading = false;
  let channel = null;
  let lastId = ""; // the last event id this tab saw, from the stream or the leader
  let state = "";

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

  function setState(value) {
    state = value;
    document.body.dataset.liveStream = value;
  }

  // One event, however it reached this tab.
  function receive(type, data, id, leader) {
    if (id) lastId = id;
    if (TYPES.indexOf(type) >= 0 && data && data.client_id) schedule(data.client_id);
    if (BROADCAST_TYPES.indexOf(type) >= 0 && data && data.broadcast_id) schedule("broadcast:" + data.broadcast_id);
    if (type === "message.reply_overdue" && data) noticeOverdue(data);
    // Resumed from too old a point: some events are gone, so refresh everything shown.
    if (type === "stream.reset") schedule("*");
    document.dispatchEvent(new CustomEvent("clientdesk:live", {
      detail: { type: type, data: data, id: id, leader: leader },
    }));
  }

  function relay(message) {
    if (channel !== null) channel.postMessage(message);
  }

  // Open the stream in this tab; `done` is called when it ends for good (signed out).
  function open(done) {
    const source = new EventSource(STREAM_URL + (lastId ? "?last_event_id=" + encodeURIComponent(lastId) : ""));
    source.addEventListener("open", function () {
      setState("open");
      relay({ kind: "state", state: "open" });
      // A batch may have finished between the page's rendering and now: look once.
      broadcasts().forEach(function (element) { schedule("broadcast:" + element.dataset.liveBroadcast); });
    });
    source.addEventListener("error", function () {
      // CLOSED: refused (signed out, 403, too many streams); the next page load tries again.
      const now = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting";
      setState(now);
      relay({ kind: "state", state: now });
    });
    TYPES.concat(BROADCAST_TYPES, OTHER_TYPES).forEach(function (type) {
      source.addEventListener(type, function (event) {
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch (error) {
          return; // not JSON: nothing to act on
        }
        relay({ kind: "event", type: type, data: data, id: event.lastEventId });
        receive(type, data, event.lastEventId, true);
        if (type === "stream.closed") {
          source.close(); // signed out or lost the permission: the next page load decides
          setState("closed");
          relay({ kind: "state", state: "closed" });
          done();
        }
      });
    });
  }

  function follow(event) {
    const message = event.data || {};
    if (message.kind === "event") {
      receive(message.type, message.data, message.id, false);
    } else if (message.kind === "state") {
      setState(message.state);
      if (message.state === "open") {
        broadcasts().forEach(function (element) { schedule("broadcast:" + element.dataset.liveBroadcast); });
      }
    } else if (message.kind === "hello" && leading && state) {
      relay({ kind: "state", state: state }); // a tab that just loaded learns where we are
    }
  }

  function connect() {
    if (started || typeof EventSource === "undefined") return;
    if (watched().length === 0 && !me()) return;
    started = true;
    const shared = me() && typeof BroadcastChannel !== "undefined" && navigator.locks;
    if (!shared) {
      open(function () {});
      return;
    }
    channel = new BroadcastChannel("clientdesk-live-" + me());
    channel.addEventListener("message", follow);
    relay({ kind: "hello" });
    // Held until this tab closes (or its stream ends for good): then the next tab leads.
    navigator.locks.request("clientdesk-live-" + me(), function () {
      leading = true;
      document.body.dataset.liveLeader = "true";
      return new Promise(function (resolve) { open(resolve); });
    });
  }

  document.addEventListener("DOMContentLoaded", connect);
  document.addEventListener("htmx:load", connect); // a drawer or panel opened later
})();
