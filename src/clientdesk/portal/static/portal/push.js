// Web Push in the reference cabinet: "Turn on notifications" for this device, its state, "Turn
// off", and opening the message a notification was about. It uses only the public portal API:
//   GET    /portal/api/v1/push/key            the VAPID public key (applicationServerKey)
//   GET    /portal/api/v1/push/subscriptions  this client's devices, each with probably_dead
//   POST   /portal/api/v1/push/subscriptions  PushSubscription.toJSON() of this device
//   DELETE /portal/api/v1/push/subscriptions  {"endpoint"}: this device no more
// The browser asks the client's permission only when the button is pressed, never on load.
// The service worker (/portal/sw.js) shows each push and confirms it with a receipt.
"use strict";

(() => {
  const API = "/portal/api/v1";
  const WORKER = "/portal/sw.js";
  const SCOPE = "/portal/";
  const $ = (id) => document.getElementById(id);
  // The cabinet's catalog (gettext) when the page has one; English otherwise.
  // Looked up at each call: the catalog may load after this script.
  const gettext = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);
  const supported =
    "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

  function token() {
    return sessionStorage.getItem("portal-token");
  }

  async function api(path, { method = "GET", body } = {}) {
    const response = await fetch(API + path, {
      method,
      headers: {
        Authorization: `Bearer ${token()}`,
        ...(body ? { "Content-Type": "application/json" } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || response.statusText);
    return data;
  }

  function keyBytes(base64url) {
    const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  // Registering the worker asks nothing of the client; it only lets a push be shown.
  function registration() {
    return navigator.serviceWorker.register(WORKER, { scope: SCOPE });
  }

  function show({ state, on = false, off = false }) {
    $("push-state").textContent = state;
    $("push-on").hidden = !on;
    $("push-off").hidden = !off;
  }

  function fail(error) {
    $("push-error").textContent = error;
    $("push-error").hidden = false;
  }

  async function refresh() {
    $("push-error").hidden = true;
    if (!supported) {
      return show({
        state: gettext(
          "This browser cannot show notifications from the cabinet. On an iPhone or iPad, add " +
            "the cabinet to your Home Screen first (Share, then Add to Home Screen) and open it " +
            "from there.",
        ),
      });
    }
    if (Notification.permission === "denied") {
      return show({
        state: gettext(
          "Notifications are blocked for this site. Allow them in your browser's site " +
            "settings, then come back here.",
        ),
      });
    }
    const current = await (await registration()).pushManager.getSubscription();
    if (!current || !token()) {
      const state = gettext("Notifications are off on this device.");
      return show({ state, on: Boolean(token()) });
    }
    const devices = (await api("/push/subscriptions")).items;
    const mine = devices.find((d) => d.endpoint === current.endpoint);
    if (!mine) {
      return show({ state: gettext("Notifications are off on this device."), on: true, off: true });
    }
    const others = devices.length - 1;
    let state = gettext("Notifications are on for this device.");
    if (mine.probably_dead) {
      state = gettext(
        "Notifications are on, but this device has not confirmed the last ones. Turn them off " +
          "and on again.",
      );
    }
    if (others > 0) state += " " + gettext("Other devices: %s.").replace("%s", String(others));
    show({ state, off: true });
  }

  async function turnOn() {
    $("push-error").hidden = true;
    $("push-on").disabled = true;
    try {
      // Only here, after the client pressed the button, does the browser ask.
      const permission = await Notification.requestPermission();
      if (permission !== "granted") return refresh();
      const worker = await registration();
      await navigator.serviceWorker.ready;
      const { public_key: key } = await api("/push/key");
      let subscription = await worker.pushManager.getSubscription();
      if (!subscription) {
        subscription = await worker.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: keyBytes(key),
        });
      }
      await api("/push/subscriptions", { method: "POST", body: subscription.toJSON() });
      await refresh();
    } catch (error) {
      fail(
        gettext("Notifications could not be turned on: %s").replace(
          "%s",
          error && error.message ? error.message : String(error),
        ),
      );
    } finally {
      $("push-on").disabled = false;
    }
  }

  async function turnOff() {
    $("push-error").hidden = true;
    $("push-off").disabled = true;
    try {
      const subscription = await (await registration()).pushManager.getSubscription();
      if (subscription) {
        await api("/push/subscriptions", {
          method: "DELETE",
          body: { endpoint: subscription.endpoint },
        });
        await subscription.unsubscribe();
      }
      await refresh();
    } catch (error) {
      fail(error && error.message ? error.message : String(error));
    } finally {
      $("push-off").disabled = false;
    }
  }

  // Opened from a notification (?message=ID), or told by the service worker while open: show
  // that message once the inbox has it.
  function openMessage(id) {
    if (typeof id !== "string" || !/^[0-9a-f-]{36}$/i.test(id)) return;
    const reveal = () => {
      const item = $(`m-${id}`);
      if (!item) return false;
      const button = item.querySelector("button");
      if (button && item.dataset.open !== "1") button.click();
      item.scrollIntoView({ block: "center" });
      return true;
    };
    if (reveal()) return;
    const list = $("messages");
    if (!list) return;
    const watch = new MutationObserver(() => reveal() && watch.disconnect());
    watch.observe(list, { childList: true });
    setTimeout(() => watch.disconnect(), 30000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!$("push")) return;
    $("push-on").addEventListener("click", turnOn);
    $("push-off").addEventListener("click", turnOff);
    // Shown with the cabinet's Notification settings, and read afresh each time they open.
    const settings = $("settings");
    if (settings) {
      const sync = () => {
        $("push").hidden = settings.hidden;
        if (!settings.hidden) refresh().catch((error) => fail(error.message));
      };
      new MutationObserver(sync).observe(settings, { attributes: true, attributeFilter: ["hidden"] });
    }
    if (supported) {
      registration().catch(() => undefined); // so a push can be shown; no prompt
      navigator.serviceWorker.addEventListener("message", (event) => {
        if (event.data && event.data.type === "clientdesk.open-message") {
          openMessage(event.data.message_id);
        }
      });
    }
    const wanted = new URLSearchParams(location.search).get("message");
    if (wanted) {
      history.replaceState(null, "", location.pathname + location.hash);
      openMessage(wanted);
    }
  });
})();
