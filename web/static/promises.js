/* callpop: "my promises due today and overdue" — the desk's side panel and the promises
 * page share it. Overdue first (the API's order); marking kept/broken closes it for everyone.
 */
"use strict";

(() => {
  const { t, el, api } = callpop;
  const box = document.getElementById("due-promises");
  if (!box) return;
  const list = box.querySelector("ul");
  const count = box.querySelector(".count");

  async function load() {
    try {
      const page = await api("GET", "/api/promises/due");
      count.textContent = String(page.total);
      list.replaceChildren(...page.items.map((p) => {
        const item = cards.promiseItem({ ...p, made_by: { id: p.made_by_id, name: p.made_by_name } }, null);
        item.prepend(el("a", { class: "client-name", href: `/clients/${p.client_id}`, text: p.client_name || "" }));
        return item;
      }));
      if (!page.items.length) list.append(el("li", { class: "muted", text: t("Nothing due. Well done!") }));
    } catch (err) {
      list.replaceChildren(el("li", { class: "error", text: err.message }));
    }
  }

  document.addEventListener("callpop:kpi", load);
  document.addEventListener("callpop:saved", load);
  load();
  setInterval(load, 5 * 60 * 1000);
})();
