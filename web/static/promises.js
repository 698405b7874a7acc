/* callpop: "my promises" — the desk's side panel and the promises page share it. Filters:
 * due (overdue and today, the default), overdue, today, upcoming. Marking kept/broken or
 * rescheduling updates the list and its counter at once. The side panel shows a few; the
 * promises page shows them all.
 */
"use strict";

(() => {
  const { t, el, api } = callpop;
  const box = document.getElementById("due-promises");
  if (!box) return;
  const list = box.querySelector("ul");
  const count = box.querySelector(".count");
  const cap = Number(box.dataset.cap || 0); // 0: no cap (the promises page)
  const FILTERS = [["due", t("Due now")], ["overdue", t("Overdue")], ["today", t("Today")], ["upcoming", t("Upcoming")]];
  let filter = "due";
  let me = null;

  const bar = el("div", { class: "filters", role: "group", "aria-label": t("Show promises") },
    FILTERS.map(([key, label]) => el("button", {
      type: "button", class: "small filter", dataset: { filter: key }, "aria-pressed": key === filter ? "true" : "false",
      text: label, onclick: () => { filter = key; load(); },
    })));
  list.before(bar);

  function endOfToday() {
    const d = new Date();
    d.setHours(24, 0, 0, 0);
    return d.toISOString();
  }

  async function fetchItems() {
    if (filter === "due") return api("GET", "/api/promises/due");
    me = me || await api("GET", "/api/me");
    const now = new Date().toISOString();
    const range = filter === "overdue" ? `due_before=${encodeURIComponent(now)}`
      : filter === "today" ? `due_after=${encodeURIComponent(now)}&due_before=${encodeURIComponent(endOfToday())}`
        : `due_after=${encodeURIComponent(endOfToday())}`;
    return api("GET", `/api/promises?status=open&made_by=${me.id}&${range}&limit=100`);
  }

  async function load() {
    for (const b of bar.querySelectorAll("button")) b.setAttribute("aria-pressed", b.dataset.filter === filter ? "true" : "false");
    try {
      const page = await fetchItems();
      const total = page.total === undefined || page.total === null ? page.items.length : page.total;
      count.textContent = String(total);
      const shown = cap ? page.items.slice(0, cap) : page.items;
      list.replaceChildren(...shown.map((p) => {
        const item = cards.promiseItem({ ...p, made_by: { id: p.made_by_id, name: p.made_by_name } }, load);
        item.prepend(el("a", { class: "client-name", href: `/clients/${p.client_id}`, text: p.client_name || "" }));
        return item;
      }));
      if (cap && total > shown.length) {
        list.append(el("li", { class: "more" }, el("a", { href: "/promises", text: t("All %(n)s promises", { n: total }) })));
      }
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
