// Broadcast pages: the composer's review goes stale when the form changes, and the cancel
// confirmation dialog. The progress bar itself is refreshed by live.js (data-live-broadcast).
(function () {
  "use strict";

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  // ---- Composer: a change makes a new request, so a new key and a new review ----
  // The same key is kept for the confirm button pressed twice (one broadcast); after an edit the
  // review no longer describes what would be sent, so it goes, and "Send to N clients" with it.
  function composerChanged(event) {
    const form = event.target.form;
    if (!form || form.id !== "broadcast-form") return;
    const key = form.querySelector('[name="idempotency_key"]');
    if (key) key.value = newKey();
    const review = document.getElementById("review");
    if (review && review.firstElementChild) review.replaceChildren();
    // A date picked for a schedule chooses that schedule.
    if (event.target.id === "send-at" && event.target.value) document.getElementById("when-at").checked = true;
    if (event.target.id === "send-at-local" && event.target.value) document.getElementById("when-local").checked = true;
  }
  document.addEventListener("input", composerChanged);
  document.addEventListener("change", composerChanged);

  // A review that went through makes the form's earlier alerts history (and on a phone an alert
  // would sit over "Send to N clients").
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.id !== "review" || event.detail.xhr.status >= 300) return;
    document.querySelectorAll("#toasts .toast-error").forEach(function (toast) { toast.remove(); });
    const confirm = document.getElementById("confirm-button");
    const title = document.getElementById("review-title");
    if (confirm) confirm.focus();
    else if (title) { title.tabIndex = -1; title.focus(); }
  });

  // ---- The cancel confirmation ----
  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-opens-dialog]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.opensDialog);
      if (dialog && !dialog.open) dialog.showModal();
      return;
    }
    const closer = event.target.closest("[data-closes-dialog]");
    if (closer) closer.closest("dialog").close();
  });

  // After the cancel request the page reloads (success); on an error the dialog gives way to
  // the alert toast, which a modal dialog would hide.
  document.addEventListener("htmx:afterRequest", function (event) {
    const dialog = event.detail.elt.closest && event.detail.elt.closest("dialog.confirm-dialog");
    if (dialog && dialog.open && !event.detail.successful) dialog.close();
  });
})();
