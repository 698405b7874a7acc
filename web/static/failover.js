/* callpop: a page whose callpop instance stopped answering moves itself to another one of
 * [push] instance_urls (docs/operations.md, "Several instances: desks and browsers").
 *
 * Why move the page rather than send its requests elsewhere: the page's links, forms,
 * fetches and CSRF token all belong to the instance that served it; served by the live
 * one, everything works again at once, with nothing cross-origin to allow. The session
 * cookie is valid there (same CALLPOP_SECRET_KEY, sessions in the shared database; a
 * cookie is per host, not per port, or set for [web] cookie_domain).
 *
 * When: a request of this page failed on the network, the desk's socket went to another
 * instance, or (every 30 s while the page is shown) a look at /health failed. The page's
 * own /health is asked first: an instance that answers, even "not ready", is kept. Then
 * the others (no cookie sent), the socket's one first. While a record form has unsent text
 * the page does not move by itself: it says where the work goes on and moves on a click,
 * or when the manager's next save fails. The drafts (drafts.js) travel in the new
 * address's fragment, which is never sent to a server, and are adopted by the new page.
 */
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("callpop-config").textContent);
  const messages = config.messages || {};
  const t = (id, params) => {
    let text = Object.prototype.hasOwnProperty.call(messages, id) ? messages[id] : id;
    if (params) text = text.replace(/%\((\w+)\)s/g, (_, key) => (key in params ? String(params[key]) : ""));
    return text;
  };
  const drafts = window.callpopDrafts;
  const MARK = "#callpop-moved=";
  const here = window.location.origin;
  const others = [...new Set((config.instances || []).map((url) => {
    try { return new URL(url).origin; } catch (_) { return null; }
  }))].filter((origin) => origin && origin !== here);
  let checking = false;
  let again = null;
  let moving = false;

  /** Say *text* above the page; *warning*: about this instance, gone once it answers again. */
  function notice(text, action, warning = true) {
    let box = document.getElementById("instance-notice");
    if (!box) {
      box = document.createElement("div");
      box.id = "instance-notice";
      box.className = "instance-notice";
      box.setAttribute("role", "status");
      box.setAttribute("aria-live", "polite");
      (document.querySelector("main") || document.body).prepend(box);
    }
    const line = document.createElement("span");
    line.textContent = text;
    box.replaceChildren(line);
    if (action) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.textContent = action.label;
      button.addEventListener("click", action.run);
      box.append(" ", button);
    }
    box.dataset.warning = warning ? "1" : "";
    box.hidden = false;
  }

  function clearWarning() {
    const box = document.getElementById("instance-notice");
    if (box && box.dataset.warning) box.hidden = true;
  }

  const hostOf = (origin) => new URL(origin).host;

  /** Does *origin* answer HTTP at all? A slow answer counts as yes: only a refused or
   * dropped connection means the instance is gone. */
  async function answers(origin) {
    try {
      await fetch(`${origin}/health`, { mode: origin === here ? "same-origin" : "no-cors", credentials: "omit",
        cache: "no-store", signal: AbortSignal.timeout(4000) });
      return true;
    } catch (err) {
      return err && err.name === "TimeoutError";
    }
  }

  function move(target) {
    if (moving) return;
    moving = true;
    const carried = { from: window.location.host, drafts: drafts ? drafts.all() : [] };
    const path = window.location.pathname + window.location.search;
    window.location.replace(`${target}${path}${MARK}${encodeURIComponent(JSON.stringify(carried))}`);
  }

  /** Check this page's instance; move to a live one when it is gone. *urgent*: a save or
   * another action of the manager just failed, so moving cannot interrupt anything. */
  async function check({ urgent = false, live = null } = {}) {
    if (!others.length || moving) return;
    if (checking) { // asked again meanwhile (a save failed while the socket's check ran): once more after
      again = { urgent: urgent || Boolean(again && again.urgent), live: live || (again && again.live) };
      return;
    }
    checking = true;
    try {
      if (await answers(here)) {
        clearWarning();
        return;
      }
      const order = live && others.includes(live) ? [live, ...others.filter((o) => o !== live)] : others;
      for (const origin of order) {
        if (!(await answers(origin))) continue;
        if (urgent || !drafts || !drafts.typing()) {
          move(origin);
        } else {
          notice(t("Server %(from)s stopped answering; the work goes on at %(to)s. What you typed moves with you.",
            { from: window.location.host, to: hostOf(origin) }),
          { label: t("Continue on %(to)s", { to: hostOf(origin) }), run: () => move(origin) });
        }
        return;
      }
      notice(t("Server %(from)s is not answering, nor is any other. What you typed is kept on this computer.",
        { from: window.location.host }));
    } finally {
      checking = false;
      if (again) {
        const next = again;
        again = null;
        check(next);
      }
    }
  }

  /** Arrived from an instance that stopped answering: adopt its drafts, say so. */
  function arrived() {
    if (!window.location.hash.startsWith(MARK)) return;
    let carried = null;
    try { carried = JSON.parse(decodeURIComponent(window.location.hash.slice(MARK.length))); } catch (_) { /* cut */ }
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
    if (!carried) return;
    const kept = drafts ? drafts.adopt(carried.drafts) : 0;
    const from = String(carried.from || "");
    notice(kept
      ? t("Server %(from)s stopped answering: you are now on server %(to)s. What you typed is kept.",
        { from, to: window.location.host })
      : t("Server %(from)s stopped answering: you are now on server %(to)s.", { from, to: window.location.host }),
    null, false);
  }

  arrived();
  if (!others.length) return;
  document.addEventListener("callpop:unreachable", (ev) => check(ev.detail || {}));
  document.addEventListener("visibilitychange", () => { if (!document.hidden) check(); });
  setInterval(() => { if (!document.hidden) check(); }, 30000);
})();
