// Reply notifications on every staff page: a client answered one of your messages
// (followup/notifications.py says who hears of which reply). The count comes rendered with the
// page (the badge on "Messages", the tab's title) and then follows the one event stream
// (live.js's `clientdesk:live`): a `notification.created` shows a toast (and, if turned on, a
// desktop notification, once per browser), and any `notification.*` fetches the count again, so
// every tab and device agrees after a read anywhere. Opening a conversation (the send panel)
// marks its replies read (POST /api/v1/notifications/read).
(function () {
  "use strict";
  const API = "/api/v1/notifications";
  const PANEL = "/clients/";
  let refetch = null;

  function me() {
    return document.body ? document.body.dataset.userId || "" : "";
  }

  function badge() {
    return document.getElementById("unread-replies");
  }

  function unread() {
    const element = badge();
    return element ? Number(element.dataset.count || "0") : 0;
  }

  function show(count) {
    const element = badge();
    if (!element) return;
    element.dataset.count = String(count);
    element.querySelector(".unread-count").textContent = String(count);
    element.hidden = count === 0;
    const all = document.getElementById("mark-replies-read");
    if (all) all.hidden = count === 0;
    // "(2) Messages · Clientdesk": the count first, so it shows on a narrow tab.
    const title = document.title.replace(/^\(\d+\) /, "");
    document.title = count > 0 ? "(" + count + ") " + title : title;
  }

  function csrf() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function recount() {
    refetch = null;
    fetch(API + "?unread=true&limit=1", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) { if (body) show(body.unread_count); })
      .catch(function () { /* offline: the next event or page load corrects it */ });
  }

  function soon() {
    if (refetch === null) refetch = setTimeout(recount, 150);
  }

  // The client whose conversation is on screen (the send panel, as a drawer or a page), if any.
  function openConversation() {
    const field = document.querySelector("#compose input[name=client_id]");
    if (!field) return "";
    const dialog = field.closest("dialog");
    return dialog && !dialog.open ? "" : field.value;
  }

  function markRead(clientId) {
    if (!clientId || unread() === 0) return;
    post({ client_id: clientId });
  }

  // "Mark replies read" on the Messages page: every reply up to the newest this page has heard
  // of (a high-water mark: one that arrives meanwhile stays unread until it is seen).
  let newest = "";

  function markAllRead() {
    const button = document.getElementById("mark-replies-read");
    const rendered = button ? button.dataset.until : "";
    // The later instant, sent as written (a Date would cut the microseconds off).
    const until = newest && (!rendered || Date.parse(newest) > Date.parse(rendered)) ? newest : rendered;
    if (until) post({ until: until });
  }

  function post(body) {
    fetch(API + "/read", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(body),
    })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) { if (body) show(body.unread_count); })
      .catch(function () { /* stays unread; opening it again marks it */ });
  }

  // ---- Desktop notifications: only after the user asks, per browser and user ----
  function desktopKey() {
    return "clientdesk-desktop-notifications-" + me();
  }

  function desktopOn() {
    try {
      return typeof Notification !== "undefined" && Notification.permission === "granted"
        && window.localStorage.getItem(desktopKey()) === "on";
    } catch (error) {
      return false;
    }
  }

  function desktopButton() {
    const button = document.getElementById("desktop-notifications");
    if (!button) return;
    if (typeof Notification === "undefined" || Notification.permission === "denied") {
      button.hidden = true; // nothing to offer: unsupported, or refused in the browser's settings
      return;
    }
    button.hidden = false;
    // One name, its state in aria-pressed: a toggle, which no "Turn on" or "Turn off" elsewhere
    // on a page (the two-step sign-in's) can be mistaken for.
    button.textContent = "Desktop notifications";
    button.setAttribute("aria-pressed", desktopOn() ? "true" : "false");
  }

  function toggleDesktop() {
    if (desktopOn()) {
      window.localStorage.setItem(desktopKey(), "off");
      desktopButton();
      return;
    }
    Notification.requestPermission().then(function (answer) {
      if (answer === "granted") window.localStorage.setItem(desktopKey(), "on");
      desktopButton();
    });
  }

  function desktop(data) {
    if (!desktopOn()) return;
    const note = new Notification("Reply from " + (data.client_name || "a client"), {
      body: data.excerpt || "",
      tag: "reply-" + data.id, // one per reply, whichever tab shows it
    });
    note.addEventListener("click", function () {
      window.focus();
      window.location.assign(PANEL + encodeURIComponent(data.client_id) + "/send/");
    });
  }

  // A burst of replies (a broadcast's) keeps the newest few toasts, not a column of them.
  const MAX_TOASTS = 3;

  function toast(data) {
    if (typeof window.clientdeskToast !== "function") return;
    const shown = document.querySelectorAll(".toast[data-source^='reply-']");
    for (let i = 0; i <= shown.length - MAX_TOASTS; i += 1) shown[i].remove();
    const element = window.clientdeskToast(
      "New reply from " + (data.client_name || "a client") + ": " + (data.excerpt || ""),
      "success",
      "reply-" + data.id
    );
    const link = document.createElement("a");
    link.href = PANEL + encodeURIComponent(data.client_id) + "/send/";
    link.className = "toast-link";
    link.textContent = "Open conversation";
    element.querySelector("span").after(link);
  }

  document.addEventListener("clientdesk:live", function (event) {
    const detail = event.detail;
    if (detail.type === "notification.created" && detail.data && detail.data.user_id === me()) {
      toast(detail.data);
      if (!newest || Date.parse(detail.data.created_at) > Date.parse(newest)) newest = detail.data.created_at;
      if (detail.leader) desktop(detail.data);
      show(unread() + 1); // at once; the count from the server follows
      if (openConversation() === detail.data.client_id) {
        markRead(detail.data.client_id); // it is on screen already
        return;
      }
      soon();
    } else if (detail.type === "notification.read" || detail.type === "stream.reset") {
      soon();
    }
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("#desktop-notifications")) toggleDesktop();
    if (event.target.closest("#mark-replies-read")) markAllRead();
  });

  document.addEventListener("DOMContentLoaded", function () {
    desktopButton();
    markRead(openConversation());
  });
  // The send panel opens as a drawer (app.js opens it on the swap): read once it shows. Later
  // swaps inside it find nothing unread and ask nothing.
  document.addEventListener("htmx:afterSettle", function () {
    markRead(openConversation());
  });
})();
