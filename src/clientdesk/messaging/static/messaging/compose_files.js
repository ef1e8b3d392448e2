// The send panel's files (messaging/send_panel.html): each chosen file is uploaded at once
// (POST /api/v1/files with the session and its CSRF token), listed with a Remove button, and the
// form sends its id in `attachments`. The panel arrives by htmx, so this listens on the document.
"use strict";

(() => {
  const MAX_FILES = 5;

  function size(bytes) {
    if (bytes < 1024) return `${bytes} bytes`;
    if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
    return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  }

  function item(text, className) {
    const li = document.createElement("li");
    li.className = className;
    const label = document.createElement("span");
    label.textContent = text;
    li.append(label);
    return li;
  }

  async function upload(input, file, list) {
    const token = input.form.querySelector("[name=csrfmiddlewaretoken]").value;
    const row = item(`${file.name} — uploading…`, "compose-attachment is-uploading");
    list.append(row);
    const body = new FormData();
    body.append("file", file);
    let data = {};
    let ok = false;
    try {
      const response = await fetch(input.dataset.uploadUrl, {
        method: "POST",
        headers: { "X-CSRFToken": token },
        credentials: "same-origin",
        body,
      });
      data = await response.json().catch(() => ({}));
      ok = response.status === 201;
    } catch {
      data = { detail: "The connection failed." };
    }
    if (!ok) {
      row.className = "compose-attachment field-error";
      row.firstChild.textContent = `${file.name}: ${data.detail || "not uploaded"}`;
    } else {
      row.className = "compose-attachment";
      row.firstChild.textContent = `${data.name} · ${size(data.size)}`;
      const id = document.createElement("input");
      id.type = "hidden";
      id.name = "attachments";
      id.value = data.id;
      row.append(id);
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "button button-small";
    remove.dataset.removeAttachment = "";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${ok ? data.name : file.name}`);
    row.append(remove);
  }

  document.addEventListener("change", async (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.id !== "compose-files-input") return;
    const list = document.getElementById("compose-attachments");
    const files = Array.from(input.files);
    input.value = "";
    for (const file of files) {
      if (list.querySelectorAll("input[name=attachments]").length >= MAX_FILES) {
        list.append(item(`${file.name}: at most ${MAX_FILES} files per message.`, "field-error"));
        break;
      }
      await upload(input, file, list);
    }
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-remove-attachment]");
    if (button) button.closest("li").remove();
  });
})();
