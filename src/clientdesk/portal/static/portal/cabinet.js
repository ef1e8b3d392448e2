// The reference online cabinet. It uses only the public portal API, so an integrator can copy it:
//   POST /portal/api/v1/session            one-time sign-in code -> session token
//   GET  /portal/api/v1/messages           the inbox, newest first, with unread_count
//   POST /portal/api/v1/messages/{id}/read mark a message from the business read
//   POST /portal/api/v1/messages           send a reply (with an Idempotency-Key)
//   GET  /portal/api/v1/events             live events (SSE), resumed by Last-Event-ID
//   GET  /portal/api/v1/preferences        notification settings: {"outreach_opt_out": bool}
//   PUT  /portal/api/v1/preferences        turn news and offers (outreach) off or on
"use strict";

const API = "/portal/api/v1";
const business = document.body.dataset.business;
const $ = (id) => document.getElementById(id);
const state = { token: null, items: new Map(), unread: 0, next: null, fresh: 0, stream: null };

// --- talking to the API --------------------------------------------------------------------

async function api(path, { method = "GET", body, headers = {} } = {}) {
  const response = await fetch(API + path, {
    method,
    headers: {
      Authorization: `Bearer ${state.token}`,
      ...(body ? { "Content-Type": "application/json" } : {}),
      ...headers,
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) signOut("Your session has ended. Open a new sign-in link.");
  if (!response.ok) throw Object.assign(new Error(data.detail || response.statusText), { data });
  return data;
}

// A sign-in link carries its code in the URL fragment (never sent to servers or logs).
async function signIn() {
  const code = new URLSearchParams(location.hash.slice(1)).get("code");
  if (code) {
    history.replaceState(null, "", location.pathname); // the code is single-use: drop it
    const response = await fetch(`${API}/session`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code }),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) return signOut(data.detail || "This sign-in link cannot be used.");
    sessionStorage.setItem("portal-token", data.token);
  }
  state.token = sessionStorage.getItem("portal-token");
  if (!state.token) return signOut("Open the sign-in link you were given to see your messages.");
  $("inbox").hidden = false;
  $("settings-button").hidden = false;
  const inbox = await api("/messages?limit=20");
  inbox.items.forEach((m) => add(m, "end"));
  setUnread(inbox.unread_count);
  setOlder(inbox.next);
  listen(inbox.last_event_id); // from the list's own position: nothing falls in between
  // session.js: renewal, sign-out, a kept reply
  document.dispatchEvent(
    new CustomEvent("cabinet:signed-in", { detail: { cursor: inbox.last_event_id } }),
  );
}

function signOut(text) {
  sessionStorage.removeItem("portal-token");
  if (state.stream) state.stream.close();
  $("inbox").hidden = true;
  $("settings").hidden = true;
  $("settings-button").hidden = true;
  $("signed-out").hidden = false;
  $("signed-out-text").textContent = text;
  document.title = `Messages · ${business}`;
  document.dispatchEvent(new CustomEvent("cabinet:signed-out")); // session.js keeps the reply
}

// --- live events -----------------------------------------------------------------------------

function listen(cursor) {
  // EventSource cannot send headers: the short-lived token goes in the URL. On reconnect the
  // browser sends Last-Event-ID itself, which the server prefers over the URL's cursor.
  const url = `${API}/events?token=${encodeURIComponent(state.token)}&last_event_id=${cursor}`;
  const stream = (state.stream = new EventSource(url));
  stream.addEventListener("message.created", (e) => {
    const message = JSON.parse(e.data);
    if (state.items.has(message.id)) return;
    add(message, "start");
    if (message.direction === "out") {
      setUnread(state.unread + 1);
      state.fresh += 1;
      const indicator = $("new-indicator");
      indicator.textContent = `${state.fresh} new message${state.fresh > 1 ? "s" : ""}`;
      indicator.hidden = false;
      say(`New message from ${message.sender ? message.sender.name : business}`);
    }
  });
  stream.addEventListener("message.read", (e) => {
    const { id, read_at } = JSON.parse(e.data);
    const message = state.items.get(id);
    if (message && !message.read_at) {
      message.read_at = read_at; // read on another device
      render(message);
      setUnread(state.unread - 1);
    }
  });
  stream.addEventListener("stream.reset", () => location.reload()); // too far behind: start over
  stream.addEventListener("stream.closed", () =>
    signOut("Your session has ended. Open a new sign-in link."),
  );
}

// --- the inbox ---------------------------------------------------------------------------------

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function add(message, where) {
  state.items.set(message.id, message);
  const li = document.createElement("li");
  li.id = `m-${message.id}`;
  $("messages")[where === "start" ? "prepend" : "append"](li);
  render(message);
}

// Message text is always set as text, never as HTML: it is untrusted.
function render(message) {
  const li = $(`m-${message.id}`);
  const mine = message.direction === "in";
  const unread = !mine && !message.read_at;
  li.className = `message ${mine ? "mine" : "theirs"}${unread ? " unread" : ""}`;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "message-head";
  button.setAttribute("aria-expanded", li.dataset.open === "1" ? "true" : "false");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = mine ? "You" : message.sender ? message.sender.name : business;
  const when = document.createElement("time");
  when.dateTime = message.created_at;
  when.textContent = timeFormat.format(new Date(message.created_at));
  const preview = document.createElement("span");
  preview.className = "preview";
  preview.textContent = message.body;
  button.append(who, when, preview);
  if (unread) {
    const mark = document.createElement("span");
    mark.className = "unread-mark";
    mark.textContent = "Unread";
    button.append(mark);
  }
  button.addEventListener("click", () => toggle(message));
  li.replaceChildren(button);
  // documents.js adds the message's files and document requests.
  document.dispatchEvent(new CustomEvent("cabinet:rendered", { detail: { li, message } }));
}

async function toggle(message) {
  const li = $(`m-${message.id}`);
  state.fresh = 0; // the reader is looking at the list now
  $("new-indicator").hidden = true;
  li.dataset.open = li.dataset.open === "1" ? "" : "1";
  render(message);
  li.querySelector("button").focus();
  $("reply").dataset.inReplyTo = message.direction === "out" ? message.id : "";
  if (message.direction === "out" && !message.read_at) {
    const read = await api(`/messages/${message.id}/read`, { method: "POST" });
    message.read_at = read.read_at;
    render(message);
    setUnread(state.unread - 1);
  }
}

function setUnread(count) {
  state.unread = Math.max(0, count);
  const badge = $("unread");
  badge.hidden = state.unread === 0;
  badge.textContent = `${state.unread} unread`;
  document.title = `${state.unread ? `(${state.unread}) ` : ""}Messages · ${business}`;
}

function setOlder(cursor) {
  state.next = cursor;
  $("older").hidden = !cursor;
}

function say(text) {
  $("notice").textContent = text;
}

$("older").addEventListener("click", async () => {
  const page = await api(`/messages?limit=20&before=${encodeURIComponent(state.next)}`);
  page.items.forEach((m) => state.items.has(m.id) || add(m, "end"));
  setOlder(page.next);
});

$("new-indicator").addEventListener("click", () => {
  state.fresh = 0;
  $("new-indicator").hidden = true;
  $("messages").firstElementChild?.querySelector("button").focus();
});

// One Idempotency-Key per reply being written: a retry after a network error cannot double it.
let replyKey = crypto.randomUUID();
$("reply-body").addEventListener("input", () => (replyKey = crypto.randomUUID()));

$("reply").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("reply-body");
  const error = $("reply-error");
  error.hidden = true;
  const body = { body: box.value };
  if ($("reply").dataset.inReplyTo) body.in_reply_to = $("reply").dataset.inReplyTo;
  try {
    const message = await api("/messages", {
      method: "POST",
      body,
      headers: { "Idempotency-Key": replyKey },
    });
    if (!state.items.has(message.id)) add(message, "start");
    box.value = "";
    replyKey = crypto.randomUUID();
    say("Reply sent");
  } catch (failure) {
    error.textContent = failure.message; // the text stays in the box to try again
    error.hidden = false;
    if (failure.data && failure.data.status === 401) {
      // The session had ended: session.js keeps the reply, with its key, for after sign-in.
      const detail = { body: body.body, key: replyKey };
      $("reply").dispatchEvent(new CustomEvent("reply:session-ended", { detail }));
    }
  }
});

// --- notification settings ------------------------------------------------------------------

// The box says "send me news and offers": checked is outreach on (opt-out false).
function showPreferences(preferences) {
  $("outreach").checked = !preferences.outreach_opt_out;
}

$("settings-button").addEventListener("click", async () => {
  const button = $("settings-button");
  const open = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(open));
  $("settings").hidden = !open;
  if (!open) return;
  $("outreach").disabled = true;
  try {
    showPreferences(await api("/preferences"));
    $("outreach").disabled = false;
    $("outreach").focus();
  } catch (failure) {
    $("settings-error").textContent = failure.message;
    $("settings-error").hidden = false;
  }
});

$("outreach").addEventListener("change", async () => {
  const box = $("outreach");
  const error = $("settings-error");
  error.hidden = true;
  $("settings-status").textContent = "";
  box.disabled = true;
  try {
    const saved = await api("/preferences", {
      method: "PUT",
      body: { outreach_opt_out: !box.checked },
    });
    showPreferences(saved);
    $("settings-status").textContent = saved.outreach_opt_out
      ? "Saved: you will no longer receive news and offers."
      : "Saved: you will receive news and offers.";
  } catch (failure) {
    box.checked = !box.checked; // nothing changed on the server: show what holds
    error.textContent = failure.message;
    error.hidden = false;
  } finally {
    box.disabled = false;
    box.focus();
  }
});

signIn().catch((failure) => say(failure.message));
