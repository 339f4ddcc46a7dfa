// The dashboard's few interactions. No inline scripts anywhere: the Content-Security-Policy
// allows only this file (and the vendored chart library).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  for (const el of document.querySelectorAll("[data-copy]")) {
    el.title = "click to copy";
    el.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(el.textContent.trim()));
  }
});
// Bar widths come from data attributes (the CSP forbids inline style attributes).
document.addEventListener("DOMContentLoaded", () => {
  for (const bar of document.querySelectorAll("[data-w]")) bar.style.width = bar.dataset.w + "%";
});
