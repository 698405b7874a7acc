// The earnings page keeps itself current: the server pushes {"type": "kpi_changed"} on the
// websocket after each counted contact; we refetch the figures and write them with
// textContent only (never HTML). Reconnects like the desk: 1 s, doubling up to 30 s.
(function () {
  "use strict";
  const root = document.getElementById("earnings");
  if (!root) return;
  const api = root.dataset.api;
  const status = document.getElementById("earnings-updated");

  // Same form as the server renders: "12 345.67", thin grouping by spaces, a dot for decimals.
  function group(text) {
    const [whole, frac] = text.split(".");
    const sign = whole.startsWith("-") ? "-" : "";
    const digits = whole.replace("-", "").replace(/\B(?=(\d{3})+(?!\d))/g, " ");
    return sign + digits + (frac ? "." + frac : "");
  }
  function money(value) {
    return group(Number(value).toFixed(2));
  }
  function num(value, unit) {
    if (value === null || value === undefined) return "—";
    const text = Number(value).toFixed(2).replace(/\.?0+$/, "");
    return group(text) + (unit || "");
  }
  function set(scope, field, text) {
    const el = scope.querySelector(`[data-field="${field}"]`);
    if (el) el.textContent = text;
  }

  async function refresh() {
    const resp = await fetch(api, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!resp.ok) return;
    const data = await resp.json();
    set(root, "earned", money(data.earned));
    set(root, "projection", money(data.projection));
    set(root, "elapsed", String(data.working_days.elapsed));
    set(root, "total", String(data.working_days.total));
    for (const line of data.kpis) {
      const row = root.querySelector(`tr[data-kpi="${line.kpi}"]`);
      if (!row) continue;
      const unit = line.kpi === "contacts" ? "" : "%";
      set(row, "fact", num(line.fact, unit));
      set(row, "plan", num(line.plan, unit));
      set(row, "achievement", num(line.achievement, "%") + (line.level ? " · " + line.level : ""));
      set(row, "money", money(line.money));
      set(row, "projected_money", money(line.projected_money));
    }
    if (status) status.textContent = "↻ " + new Date().toLocaleTimeString();
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
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    });
  }
  window.callpopKpiRefresh = refresh;  // tests and the desk may call it
  document.addEventListener("callpop:kpi", () => refresh().catch(() => {}));
  connect();
})();
