// The cabinet's service worker, served at {{ cabinet|escapejs }}sw.js (its scope is the cabinet).
// A push is Declarative Web Push JSON: {"web_push": 8030, "notification": {"title", "body",
// "navigate", "lang"}, "message_id", "receipt"}. Browsers with declarative support may show it
// themselves; everywhere else this worker shows it. Either way the worker confirms each push
// it sees (a receipt), so Clientdesk can tell a live device from a dead one whose push service
// still answers 201 (docs/PORTAL.md, "Web Push").
"use strict";

const CABINET = "{{ cabinet|escapejs }}";
const RECEIPTS = "{{ receipts|escapejs }}";
const ICON = "{{ icon|escapejs }}";
const BUSINESS = "{{ business_name|escapejs }}";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// Only a page of the cabinet itself is ever opened from a notification.
function cabinetUrl(navigate) {
  const fallback = new URL(CABINET, self.location.origin);
  if (typeof navigate !== "string") return fallback.href;
  try {
    const url = new URL(navigate, self.location.origin);
    return url.origin === self.location.origin && url.pathname.startsWith(CABINET)
      ? url.href
      : fallback.href;
  } catch {
    return fallback.href;
  }
}

function readPush(event) {
  try {
    const data = event.data ? event.data.json() : {};
    return data && typeof data === "object" ? data : {};
  } catch {
    return {};
  }
}

function sendReceipt(data) {
  if (typeof data.message_id !== "string" || typeof data.receipt !== "string") {
    return Promise.resolve();
  }
  return fetch(RECEIPTS, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ message_id: data.message_id, receipt: data.receipt }),
    credentials: "omit",
  }).catch(() => undefined); // offline: the push is shown anyway
}

self.addEventListener("push", (event) => {
  const data = readPush(event);
  const notification = data.notification && typeof data.notification === "object"
    ? data.notification
    : {};
  const title = typeof notification.title === "string" && notification.title
    ? notification.title
    : BUSINESS;
  const options = {
    body: typeof notification.body === "string" ? notification.body : "",
    lang: typeof notification.lang === "string" ? notification.lang : "",
    icon: ICON,
    badge: ICON,
    // One notification per client on a device: a newer message replaces the older one.
    tag: "clientdesk-message",
    renotify: true,
    data: { navigate: cabinetUrl(notification.navigate), message_id: data.message_id || null },
  };
  event.waitUntil(
    Promise.all([self.registration.showNotification(title, options), sendReceipt(data)]),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = (event.notification.data && event.notification.data.navigate) || cabinetUrl();
  const messageId = event.notification.data && event.notification.data.message_id;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find((w) => new URL(w.url).pathname.startsWith(CABINET));
      if (open) {
        // The cabinet already open (and signed in) shows the message without a reload.
        open.postMessage({ type: "clientdesk.open-message", message_id: messageId });
        return open.focus();
      }
      return self.clients.openWindow(target);
    })(),
  );
});
