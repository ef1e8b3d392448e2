// Clientdesk staff UI behaviour: action menus, the slide-out drawers, toasts and the composer.
(function () {
  "use strict";

  let returnFocusTo = null;

  // ---- Action menus (menu button pattern: Enter/Space/Arrow opens, Esc closes) ----
  function menuItems(list) { return Array.from(list.querySelectorAll('[role="menuitem"]')); }

  function closeMenu(button, focusButton) {
    const list = document.getElementById(button.getAttribute("aria-controls"));
    if (!list || list.hidden) return;
    list.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (focusButton) button.focus();
  }

  function closeAllMenus(except) {
    document.querySelectorAll('.menu-button[aria-expanded="true"]').forEach(function (b) {
      if (b !== except) closeMenu(b, false);
    });
  }

  function openMenu(button, focusLast) {
    closeAllMenus(button);
    const list = document.getElementById(button.getAttribute("aria-controls"));
    list.hidden = false;
    button.setAttribute("aria-expanded", "true");
    const items = menuItems(list);
    if (items.length) (focusLast ? items[items.length - 1] : items[0]).focus();
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest(".menu-button");
    if (button) {
      if (button.getAttribute("aria-expanded") === "true") closeMenu(button, true);
      else openMenu(button, false);
      return;
    }
    const item = event.target.closest('[role="menuitem"]');
    if (item) {
      const menu = item.closest(".menu");
      const owner = menu && menu.querySelector(".menu-button");
      // Only an item that opens a drawer hands focus back to its menu when the drawer closes.
      if (item.getAttribute("hx-target") === "#drawer-host") returnFocusTo = owner;
      if (owner) closeMenu(owner, false);
      return;
    }
    if (!event.target.closest(".menu")) closeAllMenus(null);
  });

  document.addEventListener("keydown", function (event) {
    const button = event.target.closest && event.target.closest(".menu-button");
    if (button && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      openMenu(button, event.key === "ArrowUp");
      return;
    }
    const item = event.target.closest && event.target.closest('[role="menuitem"]');
    if (!item) return;
    const menu = item.closest(".menu");
    const owner = menu.querySelector(".menu-button");
    const items = menuItems(menu);
    const index = items.indexOf(item);
    if (event.key === "Escape") { event.preventDefault(); closeMenu(owner, true); }
    else if (event.key === "ArrowDown") { event.preventDefault(); items[(index + 1) % items.length].focus(); }
    else if (event.key === "ArrowUp") { event.preventDefault(); items[(index - 1 + items.length) % items.length].focus(); }
    else if (event.key === "Home") { event.preventDefault(); items[0].focus(); }
    else if (event.key === "End") { event.preventDefault(); items[items.length - 1].focus(); }
    else if (event.key === "Tab") { closeMenu(owner, false); }
    else if (event.key === " ") { event.preventDefault(); item.click(); }
  });

  // ---- "Insert variable" menus: put the variable at the caret of their text box ----
  document.addEventListener("click", function (event) {
    const item = event.target.closest("[data-insert]");
    if (!item) return;
    event.preventDefault();
    const box = document.getElementById(item.dataset.target);
    if (!box) return;
    const start = box.selectionStart, end = box.selectionEnd, text = item.dataset.insert;
    box.setRangeText(text, start, end, "end");
    box.focus();
    box.dispatchEvent(new Event("input", { bubbles: true }));
  });

  // ---- Drawers: server-rendered <dialog>s swapped into #drawer-host ----
  function openDrawer(host) {
    const dialog = host.querySelector("dialog");
    if (!dialog) return;
    if (!returnFocusTo || !document.contains(returnFocusTo)) returnFocusTo = document.activeElement;
    // A modal dialog makes the rest of the page inert and paints over it, so toasts live
    // inside the open dialog (seen and announced) and go back to <body> when it closes.
    const toasts = document.getElementById("toasts");
    dialog.append(toasts);
    dialog.addEventListener("close", function () {
      document.body.append(toasts);
      if (dialog.parentNode === host) host.replaceChildren();
      if (returnFocusTo && document.contains(returnFocusTo)) returnFocusTo.focus();
      returnFocusTo = null;
    });
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) dialog.close();  // a click on the backdrop
    });
    dialog.showModal();
    const box = dialog.querySelector("textarea");
    if (box) { box.focus(); updateCounter(box); initialSendState(); }
  }

  function initialSendState() {
    const box = document.getElementById("message-body");
    const template = document.getElementById("template-id");
    if (!box) return;
    if (box.value.trim() || (template && template.value)) {
      htmx.trigger(box.form, "template-changed");  // show the preview of what is there
    } else {
      setSendable(false, "Type a message first.");
    }
  }

  // ---- Toasts ----
  function dismissLater(toast) {
    if (toast.getAttribute("role") === "status") {
      setTimeout(function () { toast.remove(); }, 6000);
    }
  }

  function showToast(text, kind, source) {
    const toast = document.createElement("div");
    if (source) toast.dataset.source = source;
    toast.className = "toast " + (kind === "error" ? "toast-error" : "toast-success");
    toast.setAttribute("role", kind === "error" ? "alert" : "status");
    const span = document.createElement("span");
    span.textContent = text;
    const close = document.createElement("button");
    close.type = "button"; close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss"); close.textContent = "×";
    toast.append(span, close);
    document.getElementById("toasts").append(toast);
    dismissLater(toast);
    return toast;
  }

  window.clientdeskToast = showToast; // live.js: notices that arrive on the event stream

  document.addEventListener("click", function (event) {
    const close = event.target.closest(".toast-close");
    if (close) close.closest(".toast").remove();
  });

  // ---- Composer: counter, idempotency key per compose, Ctrl+Enter ----
  // The server counts characters (Unicode code points) after turning CRLF into LF, so an emoji
  // is one character here too, not the two UTF-16 units of `value.length`.
  function characterCount(text) {
    let count = 0;
    for (const _ of text.replace(/\r\n/g, "\n")) count += 1;
    return count;
  }

  function updateCounter(box) {
    const counter = document.getElementById("message-counter");
    if (!counter) return;
    const limit = Number(counter.dataset.limit);
    const count = characterCount(box.value);
    counter.textContent = count.toLocaleString("en") + " / " + limit.toLocaleString("en");
    counter.classList.toggle("is-near", count > limit * 0.9 && count <= limit);
    counter.classList.toggle("is-over", count > limit);
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  document.addEventListener("input", function (event) {
    if (event.target.id !== "message-body") return;
    updateCounter(event.target);
    // Same text, same key: a retry after a lost response replays instead of sending twice.
    // Edited text after a failed try is a new compose, so it gets a new key.
    composeChanged(event.target.form);
  });

  // ---- Composer: template picker and live preview gate the Send button ----
  function setSendable(ok, reason) {
    const button = document.getElementById("send-button");
    if (!button) return;
    button.disabled = !ok;
    button.title = ok ? "" : (reason || "");
  }

  function previewState() {
    const preview = document.getElementById("compose-preview");
    if (!preview) return;
    const marker = preview.querySelector("[data-preview-ok]");
    if (marker) setSendable(marker.dataset.previewOk === "true", marker.textContent.trim());
  }

  function composeChanged(form) {
    // Same request, same key; a different one after a failed try is a new compose.
    if (form.dataset.submitted !== undefined && form.dataset.submitted !== composeFingerprint(form)) {
      form.querySelector('[name="idempotency_key"]').value = newKey();
      delete form.dataset.submitted;
    }
  }

  function composeFingerprint(form) {
    const box = form.querySelector("textarea");
    const template = form.querySelector("#template-id");
    return "template:" + (template ? template.value : "") + "\nbody:" + box.value;
  }

  // Choosing a template puts its text for this client in the box, to send as it is or edited
  // (the server records which). The sender's own text is set aside first.
  function chooseTemplate(input) {
    const form = input.form;
    const hidden = form.querySelector("#template-id");
    const box = form.querySelector("textarea");
    const option = Array.from(document.querySelectorAll("#template-options option"))
      .find(function (o) { return o.value === input.value; });
    const id = option ? option.dataset.id : "";
    if (hidden.value === id) return;
    if (!id && input.value.trim()) return;  // still typing a search
    const untouched = box.value === form.dataset.templateText;
    if (!hidden.value && box.value.trim()) {
      rememberDraft(form, box.value);
      const kept = document.getElementById("draft-kept");
      if (kept) kept.hidden = false;
    }
    hidden.value = id;
    delete form.dataset.templateText;
    if (id) {
      box.value = "";  // the template's text arrives with the preview (fillFromTemplate)
      form.dataset.templateFill = id;
    } else if (untouched) {
      box.value = "";  // the template's text, unedited: nothing of it to keep
      takeBackDraft(form);
      return;
    }
    updateCounter(box);
    // A template that expects a reply (a KYC request, say) ticks "Expects a reply"; the sender
    // may untick it before sending.
    const expects = form.querySelector("#expects-reply");
    if (expects && option && option.dataset.expectsReply) expects.checked = true;
    composeChanged(form);
    form.dispatchEvent(new CustomEvent("template-changed", { bubbles: true }));
  }

  function fillFromTemplate() {
    const form = document.getElementById("compose");
    const marker = document.querySelector("#compose-preview [data-template-text]");
    if (!form || !marker) return;
    const box = form.querySelector("textarea");
    if (form.dataset.templateFill !== form.querySelector("#template-id").value) return;
    delete form.dataset.templateFill;
    if (box.value.trim()) return;  // the sender typed while it was on its way
    box.value = marker.dataset.templateText;
    form.dataset.templateText = box.value;
    updateCounter(box);
    composeChanged(form);
  }

  // A draft set aside for a template is kept (in this tab) until it is taken back or sent.
  function draftKey(form) {
    const client = form.querySelector('[name="client_id"]');
    return "clientdesk-draft:" + (client ? client.value : "");
  }

  function rememberDraft(form, text) {
    try { sessionStorage.setItem(draftKey(form), text); } catch (e) { /* storage off: the box still holds it */ }
  }

  function takeBackDraft(form) {
    const box = form.querySelector("textarea");
    const input = form.querySelector("#template-choice");
    let text = box.value;
    try { text = sessionStorage.getItem(draftKey(form)) || text; sessionStorage.removeItem(draftKey(form)); } catch (e) { /* keep the box */ }
    if (input) input.value = "";
    form.querySelector("#template-id").value = "";
    delete form.dataset.templateText;
    delete form.dataset.templateFill;
    box.value = text;
    const kept = document.getElementById("draft-kept");
    if (kept) kept.hidden = true;
    updateCounter(box);
    composeChanged(form);
    box.focus();
    form.dispatchEvent(new CustomEvent("template-changed", { bubbles: true }));
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("#draft-back");
    if (button) { event.preventDefault(); takeBackDraft(button.form); }
  });

  // After a template was sent, the draft set aside for it comes back in the fresh compose.
  function restoreSetAsideDraft() {
    const form = document.getElementById("compose");
    if (!form) return;
    const box = form.querySelector("textarea");
    let text = null;
    try { text = sessionStorage.getItem(draftKey(form)); } catch (e) { return; }
    if (!text || box.value.trim() || form.querySelector("#template-id").value) return;
    try { sessionStorage.removeItem(draftKey(form)); } catch (e) { /* ignore */ }
    box.value = text;
    updateCounter(box);
    const back = document.getElementById("draft-restored");
    if (back) back.hidden = false;
  }

  document.addEventListener("input", function (event) {
    if (event.target.id === "template-choice") chooseTemplate(event.target);
  });
  document.addEventListener("change", function (event) {
    if (event.target.id === "template-choice") chooseTemplate(event.target);
  });

  document.addEventListener("keydown", function (event) {
    if (event.target.id === "message-body" && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      const button = document.getElementById("send-button");
      if (button && !button.disabled) button.click();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".toast").forEach(dismissLater);
    // Toasts arriving in server responses (htmx out-of-band swaps) get the same timer.
    new MutationObserver(function (records) {
      records.forEach(function (r) {
        r.addedNodes.forEach(function (n) { if (n.classList && n.classList.contains("toast")) dismissLater(n); });
      });
    }).observe(document.getElementById("toasts"), { childList: true });
    const box = document.getElementById("message-body");
    if (box) { updateCounter(box); initialSendState(); }
    const list = document.getElementById("sent-list");
    if (list) noteFailures(list, false);
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    const form = event.detail.elt;
    if (form.id === "compose") form.dataset.submitted = composeFingerprint(form);
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    // A drawer replacing another must not take the toasts away with the old one.
    if (event.detail.target.id === "drawer-host") {
      document.body.append(document.getElementById("toasts"));
    }
  });

  // ---- Live delivery status: a failure that appears while watching raises an alert ----
  const knownFailures = new Set();

  function noteFailures(root, announce) {
    const failedNow = new Set();
    root.querySelectorAll("[data-failed]").forEach(function (el) {
      failedNow.add(el.dataset.failed);
      if (knownFailures.has(el.dataset.failed)) return;
      knownFailures.add(el.dataset.failed);
      if (announce) showToast(el.dataset.failedText, "error").dataset.delivery = el.dataset.failed;
    });
    // A failure that recovered (Retry now) takes its alert away with it.
    document.querySelectorAll(".toast[data-delivery]").forEach(function (toast) {
      if (!failedNow.has(toast.dataset.delivery)) {
        knownFailures.delete(toast.dataset.delivery);
        toast.remove();
      }
    });
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.id === "compose-preview") { fillFromTemplate(); previewState(); }
    const list = document.getElementById("sent-list");
    if (list) noteFailures(list, event.detail.target.id !== "drawer-host");
    if (event.detail.target.id === "drawer-host") openDrawer(event.detail.target);
    if (event.detail.elt.id === "compose" || event.detail.target.id === "compose") {
      restoreSetAsideDraft();
      const box = document.getElementById("message-body");
      if (box) { updateCounter(box); box.focus(); initialSendState(); }
    }
  });


  // htmx re-enables Send after each request; put the preview's verdict back once it has.
  document.addEventListener("htmx:afterSettle", function () {
    if (!document.getElementById("compose")) return;
    setTimeout(function () {
      const box = document.getElementById("message-body");
      const template = document.getElementById("template-id");
      if (box && !box.value.trim() && !(template && template.value)) {
        setSendable(false, "Type a message first.");
      } else {
        previewState();
      }
    }, 0);
  });

  function sourceOf(event) {
    const elt = event.detail.elt;
    return elt && elt.id === "compose" ? "compose" : "";
  }

  document.addEventListener("htmx:sendError", function (event) {
    showToast("Could not reach Clientdesk. Nothing was lost: your text is still here; press Send to try again.", "error", sourceOf(event));
  });

  document.addEventListener("htmx:responseError", function (event) {
    const status = event.detail.xhr.status;
    if (status >= 500) {
      showToast("Clientdesk could not complete that (error " + status + "). Your text is kept; press Send to try again.", "error", sourceOf(event));
    }
  });

  // A send that succeeds makes the earlier failures of that form history: take their alerts
  // away so the success toast is not read under stale errors.
  // (Before the swap: the form is replaced by the response, and events on a detached form do
  // not reach the document.)
  document.addEventListener("htmx:beforeSwap", function (event) {
    const config = event.detail.requestConfig;
    if (!config || !config.elt || config.elt.id !== "compose") return;
    if (event.detail.xhr.status >= 300) return;
    document.querySelectorAll('.toast[data-source="compose"]').forEach(function (t) { t.remove(); });
    const error = document.getElementById("compose-error");
    if (error) { error.hidden = true; error.textContent = ""; }
  });
})();
