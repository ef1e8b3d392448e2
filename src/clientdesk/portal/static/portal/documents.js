// Files on messages and document requests in the reference cabinet, through the public portal API:
//   POST /portal/api/v1/files              upload one file (multipart field "file"); progress from
//                                          XMLHttpRequest's upload events
//   POST /portal/api/v1/messages           {"fulfils": {REQUEST_ID: FILE_ID}} answers a request
//   GET  /portal/api/v1/files/{id}         a file on one of the client's messages
// cabinet.js draws each message and tells this file ("cabinet:rendered"); this adds the message's
// files and, for each open document request, its own upload control (the camera on a phone,
// drag and drop on a desktop). Names and labels are set as text, never as HTML.
"use strict";

(() => {
  const API = "/portal/api/v1";
  const phone = window.matchMedia("(pointer: coarse)").matches;
  const token = () => sessionStorage.getItem("portal-token");
  const say = (text, values) => interpolate(text, values || {}, true); // text: translated

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function size(bytes) {
    if (bytes < 1024) return say(gettext("%(n)s bytes"), { n: bytes });
    if (bytes < 1024 * 1024) return say(gettext("%(n)s KB"), { n: Math.round(bytes / 1024) });
    return say(gettext("%(n)s MB"), { n: (bytes / (1024 * 1024)).toFixed(1) });
  }

  document.addEventListener("cabinet:rendered", (event) => {
    const { li, message } = event.detail;
    const block = filesBlock(message);
    if (block) li.append(block);
  });

  function filesBlock(message) {
    const attachments = message.attachments || [];
    const requests = message.document_requests || [];
    if (!attachments.length && !requests.length) return null;
    const box = el("div", "files");
    if (attachments.length) {
      const list = el("ul", "attachments");
      list.setAttribute("aria-label", gettext("Attachments"));
      attachments.forEach((file) => list.append(attachmentItem(file)));
      box.append(list);
    }
    if (requests.length) {
      const list = el("ul", "requests");
      list.setAttribute("aria-label", gettext("Documents requested"));
      requests.forEach((request) => list.append(requestItem(message, request)));
      box.append(list);
    }
    return box;
  }

  // A file needs the session token, which a plain link cannot carry: fetched, then saved.
  function attachmentItem(file) {
    const item = el("li", "attachment");
    const button = el("button", "attachment-link", `${file.name} · ${size(file.size)}`);
    button.type = "button";
    button.addEventListener("click", async () => {
      const response = await fetch(`${API}/files/${file.id}`, {
        headers: { Authorization: `Bearer ${token()}` },
      });
      if (!response.ok) return;
      const url = URL.createObjectURL(await response.blob());
      const save = el("a");
      save.href = url;
      save.download = file.name;
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    });
    item.append(button);
    return item;
  }

  function requestItem(message, request) {
    const item = el("li", `request request-${request.status}`);
    item.dataset.request = request.id;
    item.append(el("span", "request-label", request.label));
    if (request.status === "received") {
      const sent = request.file
        ? say(gettext("Sent: %(name)s"), { name: request.file.name })
        : gettext("Received");
      item.append(el("span", "request-sent", sent));
      return item;
    }
    const id = `upload-${request.id}`;
    const input = el("input", "upload-input");
    input.type = "file";
    input.id = id;
    input.accept = "image/*,application/pdf";
    if (phone) input.setAttribute("capture", "environment");
    const action = say(gettext("Upload %(label)s"), { label: request.label });
    const label = el("label", "upload-button", action);
    label.htmlFor = id;
    const hint = el("span", "upload-hint", phone ? "" : gettext("or drop the file here"));
    const progress = el("progress", "upload-progress");
    progress.max = 100;
    progress.value = 0;
    progress.hidden = true;
    const busy = say(gettext("Uploading %(label)s"), { label: request.label });
    progress.setAttribute("aria-label", busy);
    const status = el("p", "upload-status");
    status.setAttribute("role", "status");
    const error = el("p", "error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    item.append(input, label, hint, progress, status, error);
    const ui = { item, input, progress, status, error };
    input.addEventListener("change", () => {
      if (input.files.length) answer(message, request, input.files[0], ui);
    });
    item.addEventListener("dragover", (event) => {
      event.preventDefault();
      item.classList.add("dropping");
    });
    item.addEventListener("dragleave", () => item.classList.remove("dropping"));
    item.addEventListener("drop", (event) => {
      event.preventDefault();
      item.classList.remove("dropping");
      const dropped = event.dataTransfer.files;
      if (dropped.length) answer(message, request, dropped[0], ui);
    });
    return item;
  }

  function upload(file, progress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${API}/files`);
      xhr.setRequestHeader("Authorization", `Bearer ${token()}`);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) progress.value = Math.round((100 * event.loaded) / event.total);
      });
      xhr.addEventListener("load", () => {
        let data = {};
        try {
          data = JSON.parse(xhr.responseText);
        } catch {
          // not JSON: a proxy's page
        }
        if (xhr.status === 201) resolve(data);
        else reject(new Error(data.detail || gettext("The file could not be uploaded.")));
      });
      xhr.addEventListener("error", () => reject(new Error(gettext("The connection failed."))));
      const form = new FormData();
      form.append("file", file);
      xhr.send(form);
    });
  }

  // Files attached to a reply: uploaded as they are chosen; cabinet.js sends their ids with the
  // text ("attachments") and says "reply:sent" once it went.
  function replyFiles() {
    const form = document.getElementById("reply");
    if (!form || form.querySelector(".reply-files")) return;
    const box = el("div", "reply-files");
    const input = el("input", "upload-input");
    input.type = "file";
    input.id = "reply-files-input";
    input.multiple = true;
    input.accept = "image/*,application/pdf";
    const label = el("label", "button-secondary reply-attach", gettext("Attach files"));
    label.htmlFor = input.id;
    const list = el("ul", "reply-attachments");
    list.setAttribute("aria-label", gettext("Files to send"));
    list.setAttribute("aria-live", "polite");
    box.append(input, label, list);
    form.querySelector("button[type=submit]").before(box);
    input.addEventListener("change", async () => {
      const files = Array.from(input.files);
      input.value = "";
      for (const file of files) {
        if (list.querySelectorAll("input[name=attachments]").length >= 5) {
          list.append(el("li", "error", gettext("At most 5 files a reply.")));
          break;
        }
        const row = el("li", "reply-attachment");
        const name = el("span", "", file.name);
        const progress = el("progress", "upload-progress");
        progress.max = 100;
        const busy = say(gettext("Uploading %(name)s"), { name: file.name });
        progress.setAttribute("aria-label", busy);
        row.append(name, progress);
        list.append(row);
        try {
          const stored = await upload(file, progress);
          progress.remove();
          name.textContent = `${stored.name} · ${size(stored.size)}`;
          const id = el("input");
          id.type = "hidden";
          id.name = "attachments";
          id.value = stored.id;
          const remove = el("button", "attachment-link", gettext("Remove"));
          remove.type = "button";
          remove.addEventListener("click", () => row.remove());
          row.append(id, remove);
          // Another file makes another reply: a new Idempotency-Key (cabinet.js).
          document.getElementById("reply-body").dispatchEvent(new Event("input"));
        } catch (failure) {
          progress.remove();
          row.className = "error";
          name.textContent = `${file.name}: ${failure.message}`;
        }
      }
    });
    form.addEventListener("reply:sent", () => list.replaceChildren());
  }

  document.addEventListener("DOMContentLoaded", replyFiles);

  async function answer(message, request, file, ui) {
    ui.error.hidden = true;
    ui.input.disabled = true;
    ui.progress.hidden = false;
    ui.progress.value = 0;
    ui.status.textContent = say(gettext("Uploading %(name)s…"), { name: file.name });
    try {
      const stored = await upload(file, ui.progress);
      const response = await fetch(`${API}/messages`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${token()}`,
          "Content-Type": "application/json",
          "Idempotency-Key": crypto.randomUUID(),
        },
        body: JSON.stringify({
          body: "",
          in_reply_to: message.id,
          fulfils: { [request.id]: stored.id },
        }),
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(data.detail || gettext("The document was not sent."));
      request.status = "received";
      request.file = stored;
      ui.item.replaceWith(requestItem(message, request));
    } catch (failure) {
      ui.progress.hidden = true;
      ui.status.textContent = "";
      ui.error.textContent = failure.message;
      ui.error.hidden = false;
      ui.input.disabled = false;
      ui.input.value = "";
    }
  }
})();
