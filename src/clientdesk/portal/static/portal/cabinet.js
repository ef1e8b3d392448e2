// The reference online cabinet. It uses only the public portal API, so an integrator can copy it:
//   POST /portal/api/v1/session            one-time sign-in code -> session token
//   GET  /portal/api/v1/messages           the inbox, newest first, with unread_count
//   POST /portal/api/v1/messages/{id}/read mark a message from the business read
//   POST /portal/api/v1/messages           send a reply (with an Idempotency-Key)
//   GET  /portal/api/v1/events             live events (SSE), resumed by Last-Event-ID
//   GET  /portal/api/v1/preferences        notification settings: {"outreach_opt_out": bool}
//   PUT  /portal/api/v1/preferences        turn news and offers (outreach) off or on
//   GET  /portal/api/v1/locale             the client's language and time zone
// Its words come from Django's JavaScript catalog (/portal/i18n/<language>.js, loaded first:
// gettext, ngettext, interpolate), in the language the page was rendered in.
"use strict";

const API = "/portal/api/v1";
const business = document.body.dataset.business;
const $ = (id) => document.getElementById(id);
const state = { token: null, items: new Map(), unread: 0, next: null, fresh: 0, stream: null };
const SESSION_ENDED = () => gettext("Your session has ended. Open a new sign-in link.");
const pageTitle = (unread) =>
  unread
    ? interpolate(gettext("(%(count)s) Messages · %(business)s"), { count: unread, business }, true)
    : interpolate(gettext("Messages · %(business)s"), { business }, true);

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
  if (response.status === 401) signOut(SESSION_ENDED());
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
    if (!response.ok) {
      return signOut(
        response.status === 410
          ? gettext("This sign-in link was already used or has expired. Ask for a new link.")
          : gettext("This sign-in link cannot be used."),
      );
    }
    sessionStorage.setItem("portal-token", data.token);
  }
  state.token = sessionStorage.getItem("portal-token");
  if (!state.token) {
    return signOut(gettext("Open the sign-in link you were given to see your messages."));
  }
  if (await speakClientsLanguage()) return; // the page reloads in the client's language
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
  document.title = pageTitle(0);
  document.dispatchEvent(new CustomEvent("cabinet:signed-out")); // session.js keeps the reply
}

// --- the client's language and time zone ----------------------------------------------------

// The page speaks the language it was rendered in (`?lang=`, else the browser's); once the client
// is known, the client's own language decides: a page in another one reloads in it (the session
// token is kept in sessionStorage). Times show in the client's locale and zone.
let timeFormat = new Intl.DateTimeFormat(document.documentElement.lang, {
  dateStyle: "medium",
  timeStyle: "short",
});

async function speakClientsLanguage() {
  const locale = await api("/locale");
  if (locale.language !== document.documentElement.lang) {
    const asked = new URLSearchParams(location.search).get("lang");
    if (asked !== locale.language) {
      location.replace(`${location.pathname}?lang=${encodeURIComponent(locale.language)}`);
      return true;
    }
  }
  try {
    timeFormat = new Intl.DateTimeFormat(locale.language, {
      dateStyle: "medium",
      timeStyle: "short",
      timeZone: locale.timezone,
    });
  } catch {
    // a zone this browser does not know: its own zone, in the client's language
  }
  return false;
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
      indicator.textContent = interpolate(
        ngettext("%(count)s new message", "%(count)s new messages", state.fresh),
        { count: state.fresh },
        true,
      );
      indicator.hidden = false;
      const sender = message.sender ? message.sender.name : business;
      say(interpolate(gettext("New message from %(sender)s"), { sender }, true));
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
  stream.addEventListener("stream.closed", () => signOut(SESSION_ENDED()));
}

// --- the inbox ---------------------------------------------------------------------------------

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
  who.textContent = mine ? gettext("You") : message.sender ? message.sender.name : business;
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
    mark.textContent = gettext("Unread");
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
  badge.textContent = interpolate(
    ngettext("%(count)s unread", "%(count)s unread", state.unread),
    { count: state.unread },
    true,
  );
  document.title = pageTitle(state.unread);
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
  // documents.js: the ids of the files attached to this reply.
  const attached = Array.from($("reply").querySelectorAll("input[name=attachments]"), (i) => i.value);
  if (!box.value.trim() && !attached.length) {
    error.textContent = gettext("Type a reply before sending.");
    error.hidden = false;
    return;
  }
  const body = { body: box.value };
  if (attached.length) body.attachments = attached;
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
    $("reply").dispatchEvent(new CustomEvent("reply:sent"));
    say(gettext("Reply sent"));
  } catch (failure) {
    error.textContent = replyFailure(failure); // the text stays in the box to try again
    error.hidden = false;
    if (failure.data && failure.data.status === 401) {
      // The session had ended: session.js keeps the reply, with its key, for after sign-in.
      const detail = { body: body.body, key: replyKey };
      $("reply").dispatchEvent(new CustomEvent("reply:session-ended", { detail }));
    }
  }
});

// What went wrong with a reply, in the client's words: the API's own detail is English.
function replyFailure(failure) {
  const status = failure.data && failure.data.status;
  if (status === 429) {
    return gettext("You sent many replies in a short time. Wait a minute, then try again.");
  }
  if (status === 422 || status === 400) return gettext("This reply cannot be sent: check its text.");
  return gettext("Your reply could not be sent. Try again.");
}

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
  } catch {
    $("settings-error").textContent = gettext("Your settings could not be loaded. Try again.");
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
      ? gettext("Saved: you will no longer receive news and offers.")
      : gettext("Saved: you will receive news and offers.");
  } catch {
    box.checked = !box.checked; // nothing changed on the server: show what holds
    error.textContent = gettext("Your choice could not be saved. Try again.");
    error.hidden = false;
  } finally {
    box.disabled = false;
    box.focus();
  }
});

signIn().catch(() => {
  // signed out already says why; anything else: the page can be reloaded
  if ($("signed-out").hidden) say(gettext("Something went wrong. Reload the page to try again."));
});
