// The earnings page keeps itself current: the server pushes {"type": "kpi_changed"} on the
// websocket after each counted contact; the page then reads itself again from the server
// and puts the new figures in place, so every number is formatted in one place (the
// server, in the user's language). Reconnects like the desk: 1 s, doubling up to 30 s.
(function () {
  "use strict";
  const root = document.getElementById("earnings");
  if (!root) return;
  const status = document.getElementById("earnings-updated");
  const FIELDS = ["earned", "projection", "elapsed", "total"];
  const ROW_FIELDS = ["fact", "plan", "achievement", "money", "projected_money", "hint"];

  function copy(from, to, field) {
    const source = from.querySelector(`[data-field="${field}"]`);
    const target = to.querySelector(`[data-field="${field}"]`);
    if (source && target && target.textContent !== source.textContent) target.textContent = source.textContent;
  }

  async function refresh() {
    const resp = await fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!resp.ok) return;
    const fresh = new DOMParser().parseFromString(await resp.text(), "text/html").getElementById("earnings");
    if (!fresh) return;
    FIELDS.forEach((field) => copy(fresh, root, field));
    for (const row of root.querySelectorAll("tr[data-kpi]")) {
      const other = fresh.querySelector(`tr[data-kpi="${row.dataset.kpi}"]`);
      if (!other) continue;
      ROW_FIELDS.forEach((field) => copy(other, row, field));
      const bar = row.querySelector("meter");
      const newBar = other.querySelector("meter");
      if (bar && newBar) bar.value = newBar.value;
      row.className = other.className;
    }
    if (status) status.textContent = "↻ " + new Date().toLocaleTimeString(document.documentElement.lang);
  }

  let delay = 1000;
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws`);
    ws.addEventListener("open", () => { delay = 1000; });
    ws.addEventListener("message", (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg && msg.type === "kpi_changed") refresh().catch(() => {});
    });
    ws.addEventListener("close", () => {
      document.dispatchEvent(new CustomEvent("callpop:unreachable", { detail: {} })); // gone? (failover.js)
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    });
  }
  window.callpopKpiRefresh = refresh;  // tests and the desk may call it
  document.addEventListener("callpop:kpi", () => refresh().catch(() => {}));
  connect();
})();
