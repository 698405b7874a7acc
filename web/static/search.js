/* callpop: the header's client search on every page — a name, a company or a number in
 * any format ("8 (916) 123-45-67", "+7916…", "яковлев борис"); results link to the client's
 * page. Standalone (pages load it whatever else they load); results go in as text only. */
"use strict";

(() => {
  const form = document.getElementById("find-client");
  if (!form) return;
  const input = document.getElementById("find-q");
  const list = document.getElementById("find-results");
  const config = JSON.parse(document.getElementById("callpop-config").textContent);
  const messages = config.messages || {};
  const t = (id) => (Object.prototype.hasOwnProperty.call(messages, id) ? messages[id] : id);
  let timer = null;
  let asked = 0;

  function item(text, href, meta) {
    const li = document.createElement("li");
    li.setAttribute("role", "option");
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      li.append(a);
    } else {
      li.textContent = text;
      li.className = "muted";
    }
    if (meta) {
      const span = document.createElement("span");
      span.className = "meta";
      span.textContent = meta;
      li.append(span);
    }
    return li;
  }

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
  }

  async function find() {
    const q = input.value.trim();
    if (q.length < 2) { close(); return; }
    const mine = ++asked;
    try {
      const resp = await fetch("/api/clients?limit=8&q=" + encodeURIComponent(q),
        { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const data = resp.ok ? await resp.json() : { items: [] };
      if (mine !== asked) return; // a newer search is on its way
      list.replaceChildren(...data.items.map((c) => item(c.name, `/clients/${c.id}`,
        [c.company, ...(c.phones || []).slice(0, 1).map((p) => p.display || p.raw || p)].filter(Boolean).join(" · "))));
      if (!data.items.length) list.append(item(t("Nothing found")));
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
    } catch (_) {
      close();
    }
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(find, 200);
  });
  input.addEventListener("keydown", (ev) => { if (ev.key === "Escape") close(); });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const first = list.querySelector("a");
    if (first && !list.hidden) window.location.assign(first.href);
    else find();
  });
  document.addEventListener("click", (ev) => { if (!form.contains(ev.target)) close(); });
})();
