// The cabinet's session: kept alive while the tab is open, ended by "Sign out", and a reply
// that met an ended session kept until the client signs in again. Loaded after cabinet.js, whose
// `state`, `api`, `listen`, `add`, `say`, `signOut` and `replyKey` it uses; cabinet.js tells it
// about sign-in and sign-out with the events "cabinet:signed-in" and "cabinet:signed-out".
//   POST /portal/api/v1/session/refresh   a new token before this one expires (up to 12 h)
//   POST /portal/api/v1/session/end       sign out: the session ends on the server
//   POST /portal/api/v1/session/link      e-mail me a sign-in link (no session needed)
"use strict";

// The words come from the page's catalog (cabinet.html loads it first); without one, English.
if (typeof window.gettext !== "function") {
  window.gettext = (text) => text;
  window.ngettext = (one, many, count) => (count === 1 ? one : many);
  window.interpolate = (text, values) => text.replace(/%\((\w+)\)s/g, (_, name) => values[name]);
}

const PENDING = "portal-pending-reply"; // a reply sent when the session had ended: {body, in_reply_to, key}
const DRAFT = "portal-draft"; // text typed and not sent: {body, in_reply_to}
const session = { expiresAt: null, timer: null, cursor: 0, signedIn: false, retry: 3000 };

// --- staying signed in ------------------------------------------------------------------------

function scheduleRefresh() {
  clearTimeout(session.timer);
  if (!session.signedIn || !session.expiresAt) return;
  const left = session.expiresAt - Date.now();
  // Halfway to the end, so one failed attempt (a network blip) leaves time for another.
  session.timer = setTimeout(refresh, Math.max(1000, Math.min(left / 2, 5 * 60 * 1000)));
}

async function refresh() {
  if (!session.signedIn) return false;
  try {
    const renewed = await api("/session/refresh", { method: "POST" });
    const expiresAt = Date.parse(renewed.expires_at);
    const grew = !session.expiresAt || expiresAt > session.expiresAt;
    state.token = renewed.token;
    sessionStorage.setItem("portal-token", renewed.token);
    session.expiresAt = expiresAt;
    // At its maximum age the end no longer moves: the stream says when it comes.
    if (grew) scheduleRefresh();
    return true;
  } catch {
    if (session.signedIn) scheduleRefresh(); // a network error: try again (401 signed out)
    return false;
  }
}

// The stream outlives the token it was opened with (the server follows the session), but a
// reconnect sends the old URL: when the browser gives up on it, open it again with the new token.
function follow(stream) {
  const remember = (e) => {
    if (e.lastEventId) session.cursor = e.lastEventId;
  };
  ["message.created", "message.read", "stream.reset"].forEach((type) =>
    stream.addEventListener(type, remember),
  );
  stream.addEventListener("open", () => (session.retry = 3000));
  stream.addEventListener("error", () => {
    if (stream.readyState !== EventSource.CLOSED || !session.signedIn) return;
    if (stream !== state.stream) return;
    // Refused (an ended token, or all of the account's streams open in other tabs: 429): try
    // again later and later, never in a tight loop.
    setTimeout(async () => {
      if (stream !== state.stream || !session.signedIn) return;
      if (await refresh()) {
        listen(session.cursor);
        follow(state.stream);
      }
    }, session.retry);
    session.retry = Math.min(session.retry * 2, 60000);
  });
}

// --- the reply that met an ended session --------------------------------------------------------

function keepReply(body, key) {
  const inReplyTo = $("reply").dataset.inReplyTo || null;
  sessionStorage.setItem(PENDING, JSON.stringify({ body, in_reply_to: inReplyTo, key }));
  sessionStorage.removeItem(DRAFT);
  showKept();
}

function showKept() {
  const note = $("kept-reply");
  if (sessionStorage.getItem(PENDING)) {
    note.textContent = gettext(
      "Your reply is kept: it is sent when you sign in again in this tab (open the new sign-in link here).",
    );
  } else if (sessionStorage.getItem(DRAFT)) {
    note.textContent = gettext(
      "The text you were writing is kept: it is back in the reply box when you sign in again in this tab.",
    );
  }
  note.hidden = !note.textContent;
}

async function sendKept() {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  if (pending) {
    const body = { body: pending.body };
    if (pending.in_reply_to) body.in_reply_to = pending.in_reply_to;
    try {
      // The key it was first sent with: if that attempt went through after all, this is the
      // same reply, not a second one.
      const message = await api("/messages", {
        method: "POST",
        body,
        headers: { "Idempotency-Key": pending.key },
      });
      sessionStorage.removeItem(PENDING);
      if (!state.items.has(message.id)) add(message, "start");
      say(gettext("Your kept reply was sent."));
    } catch (failure) {
      if (!session.signedIn) return; // signed out again: it stays kept
      sessionStorage.removeItem(PENDING);
      $("reply-body").value = pending.body; // refused: back in the box, to change and send
      $("reply-error").textContent = failure.message;
      $("reply-error").hidden = false;
    }
  }
  const draft = JSON.parse(sessionStorage.getItem(DRAFT) || "null");
  if (draft) {
    sessionStorage.removeItem(DRAFT);
    if (!$("reply-body").value) $("reply-body").value = draft.body;
    if (draft.in_reply_to) $("reply").dataset.inReplyTo = draft.in_reply_to;
  }
}

document.addEventListener("cabinet:signed-in", (event) => {
  session.signedIn = true;
  session.cursor = event.detail.cursor;
  $("sign-out").hidden = false;
  $("kept-reply").hidden = true;
  if (state.stream) follow(state.stream);
  refresh();
  sendKept();
});

document.addEventListener("cabinet:signed-out", () => {
  session.signedIn = false;
  clearTimeout(session.timer);
  $("sign-out").hidden = true;
  const text = $("reply-body").value;
  if (text.trim() && !sessionStorage.getItem(PENDING)) {
    const inReplyTo = $("reply").dataset.inReplyTo || null;
    sessionStorage.setItem(DRAFT, JSON.stringify({ body: text, in_reply_to: inReplyTo }));
  }
  showKept();
});

// A reply refused because the session had ended (cabinet.js signed out before this runs).
$("reply").addEventListener("reply:session-ended", (event) => keepReply(event.detail.body, event.detail.key));

// A sign-in link opened in this tab (pasted into the address bar) changes only the fragment:
// start over with it, keeping what sessionStorage holds.
window.addEventListener("hashchange", () => {
  if (new URLSearchParams(location.hash.slice(1)).get("code")) location.reload();
});

// --- signing out ----------------------------------------------------------------------------------

$("sign-out").addEventListener("click", async () => {
  sessionStorage.removeItem(DRAFT);
  sessionStorage.removeItem(PENDING);
  $("reply-body").value = "";
  try {
    await api("/session/end", { method: "POST" });
  } catch {
    // ended already, or the network is away: the token is forgotten here all the same
  }
  signOut(gettext("You signed out."));
});

// --- asking for a new sign-in link ----------------------------------------------------------------

$("link-request").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("link-request-status");
  const button = $("link-request").querySelector("button");
  status.textContent = "";
  const email = $("link-email").value.trim();
  if (!email) {
    status.textContent = gettext("Type the e-mail address you gave us.");
    return;
  }
  button.disabled = true;
  try {
    const response = await fetch(`${API}/session/link`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email }),
    });
    if (response.status === 202) {
      status.textContent = gettext(
        "If this address belongs to an account, a sign-in link is on its way to it. It works once, within 15 minutes.",
      );
    } else if (response.status === 429) {
      const wait = Math.ceil(Number(response.headers.get("Retry-After") || "60") / 60);
      status.textContent = interpolate(
        ngettext(
          "Too many links asked for. Try again in %(minutes)s minute.",
          "Too many links asked for. Try again in %(minutes)s minutes.",
          wait,
        ),
        { minutes: wait },
        true,
      );
    } else {
      status.textContent = gettext("Check the e-mail address: it does not look like one.");
    }
  } catch {
    status.textContent = gettext("The link could not be asked for. Try again.");
  } finally {
    button.disabled = false;
  }
});
