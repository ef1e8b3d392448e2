// Messages page: keep the conversation list live. Any event that can move a conversation
// (a message, a read receipt, a clock turning overdue) reloads the list as it is filtered, once
// per burst; the server renders the rows, so what is live is exactly what a reload would show.
(function () {
  "use strict";

  const RELOAD_TYPES = ["message.created", "message.read", "message.reply_overdue", "delivery.updated"];
  let pending = null;

  function listUrl() {
    const section = document.getElementById("conversations");
    return section ? section.dataset.liveRefresh : null;
  }

  function reload() {
    pending = null;
    const url = listUrl();
    if (!url || !window.htmx) return;
    htmx.ajax("GET", url, { target: "#conversations", swap: "outerHTML", headers: { "HX-Target": "conversations" } });
  }

  function soon() {
    if (pending === null) pending = setTimeout(reload, 300);
  }

  // "due in 3 h" turns into "overdue" without an event when the clock is not ours to move;
  // a quiet minute refresh keeps the words honest.
  setInterval(soon, 60000);

  // The page's one stream is live.js's: it hands every event over as `clientdesk:live`.
  document.addEventListener("clientdesk:live", function (event) {
    if (RELOAD_TYPES.indexOf(event.detail.type) >= 0 && listUrl()) soon();
  });
})();
