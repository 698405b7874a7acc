/* callpop: "missed calls to return" on the desk — this manager's clients who called and
 * reached nobody (one line per call), each with a call-back button (the manager's own
 * phone rings first, as on the client page) and "done". A call leaves the list when it is
 * marked done or once the client has had an answered call. */
"use strict";

(() => {
  const { t, el, api, when, showError } = callpop;
  const box = document.getElementById("missed-calls");
  if (!box) return;
  const list = box.querySelector("ul");
  const count = box.querySelector(".count");

  function row(m) {
    const error = el("span", { class: "error", hidden: true });
    const li = el("li", { class: "missed-call", dataset: { call: m.call_id } },
      el("a", { class: "client-name", href: `/clients/${m.client_id}`, text: m.client_name }),
      el("span", { class: "meta", text: [when(m.started_at), m.display || m.number].filter(Boolean).join(" · ") }));
    const actions = el("span", { class: "promise-actions" });
    if (m.number) {
      actions.append(el("button", { type: "button", class: "small call-button", text: t("Call back"),
        onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await api("POST", "/api/originate", { client_phone: m.number });
            ev.target.textContent = t("Your phone rings…");
          } catch (err) {
            showError(error, err);
          } finally {
            setTimeout(() => { ev.target.disabled = false; ev.target.textContent = t("Call back"); }, 4000);
          }
        } }));
    }
    actions.append(el("button", { type: "button", class: "small done", text: t("Done"), onclick: async (ev) => {
      ev.target.disabled = true;
      try {
        await api("POST", `/api/callbacks/${m.call_id}/done`);
        load();
      } catch (err) {
        ev.target.disabled = false;
        showError(error, err);
      }
    } }));
    li.append(actions, error);
    return li;
  }

  async function load() {
    try {
      const page = await api("GET", "/api/callbacks");
      count.textContent = String(page.total);
      list.replaceChildren(...page.items.slice(0, 8).map(row));
      if (page.items.length > 8) list.append(el("li", { class: "muted", text: t("and %(n)s more", { n: page.items.length - 8 }) }));
      if (!page.items.length) list.append(el("li", { class: "muted", text: t("No missed calls to return.") }));
    } catch (err) {
      list.replaceChildren(el("li", { class: "error", text: err.message }));
    }
  }

  document.addEventListener("callpop:call-ended", () => setTimeout(load, 500)); // after the journal wrote it
  document.addEventListener("callpop:saved", load);
  load();
  setInterval(load, 60 * 1000);
})();
