/* callpop: the dashboard's period picker shows only the date fields the period needs:
 * one date for a day, week or month; from and to for a custom range. */
"use strict";

(() => {
  const kind = document.getElementById("period-kind");
  if (!kind) return;
  const form = kind.form;
  function show() {
    const custom = kind.value === "custom";
    for (const label of form.querySelectorAll("label[data-for]")) {
      label.hidden = (label.dataset.for === "custom") !== custom;
      for (const input of label.querySelectorAll("input")) input.disabled = label.hidden; // not sent either
    }
  }
  kind.addEventListener("change", show);
  show();
})();
