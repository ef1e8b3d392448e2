// "Copy" next to a secret shown once: copies the text of the element named by data-copy.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    const note = button.parentElement.querySelector("[data-copied]");
    if (note) note.hidden = false;
  });
});
