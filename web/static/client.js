/* callpop: a client's page — the card with the whole history, the record form and
 * click-to-call from the manager's own phone (POST /api/originate).
 */
"use strict";

(() => {
  const { config, t, el, api, showError } = callpop;
  const box = document.getElementById("client-card");
  const status = document.getElementById("dial-status");
  const clientId = config.page.client_id;

  async function dial(phone, button) {
    button.disabled = true;
    status.hidden = false;
    status.textContent = t("Calling %(number)s: your phone rings first…", { number: phone.display || phone.raw });
    try {
      await api("POST", "/api/originate", { client_phone: phone.e164 || phone.raw });
    } catch (err) {
      showError(status, err);
    } finally {
      setTimeout(() => { button.disabled = false; }, 3000);
    }
  }

  // built once: a reload after saving must not wipe the form or its "Saved." line
  const form = cards.recordForm(clientId, null, () => reload());

  function render(card) {
    box.replaceChildren(cards.clientDetails(card, { dial, onChange: reload }), form);
  }

  async function reload() {
    try {
      render(await cards.loadCard(clientId));
    } catch (err) {
      box.append(el("p", { class: "error", text: err.message }));
    }
  }

  render(config.page.card);
})();
