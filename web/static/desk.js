/* callpop: the manager's desk. Holds one websocket to /ws (protocol: docs/websocket.md),
 * keeps one card per call, follows the call (ringing → active → after-call form, or
 * greyed and dismissed), reconnects with backoff and shows the connection state.
 */
"use strict";

const desk = (() => {
  const { config, t, el, api } = callpop;
  const board = document.getElementById("calls");
  const empty = document.getElementById("no-calls");
  const stateLabel = document.getElementById("connection-state");
  const pbxLabel = document.getElementById("pbx-state");
  const pbxDown = new Set(); // ids of the PBXs callpop has lost (pbx.status)
  const strip = document.getElementById("call-strip");
  const calls = new Map(); // call id -> {node, state, card, callId, agent, timer}
  const page = config.page || {};
  const agentNames = page.agents || {};
  let socket = null;
  let backoff = 1000;
  let retryTimer = null;
  let me = null;
  let dismissAfter = (config.dismissAfter || 8) * 1000;

  function setConnection(state, detail) {
    stateLabel.dataset.state = state;
    stateLabel.textContent = detail ? `${t(state)} — ${detail}` : t(state);
  }

  function showPbxDown() {
    if (!pbxLabel) return;
    pbxLabel.hidden = pbxDown.size === 0;
    pbxLabel.textContent = pbxDown.size ? t("PBX %(pbx)s unreachable", { pbx: [...pbxDown].sort().join(", ") }) : "";
  }

  function refreshEmpty() {
    empty.hidden = calls.size > 0;
    strip.hidden = ![...calls.values()].some((e) => e.compact);
    renderBoard();
  }

  // sound, the tab's title, the screen readers' line and desktop notifications (ringer.js)
  const ringer = callpopRinger({ calls, supervisor: Boolean(page.supervisor), title: (card) => notifyTitle(card) });
  const { alerts, announce, notify } = ringer;

  // --- supervisor: who is ringing and who is talking ------------------------------------------

  const liveBoard = document.getElementById("live-board");
  function renderBoard() {
    if (!liveBoard) return;
    const rows = [...calls.values()].filter((e) => e.state === "ringing" || e.state === "active");
    liveBoard.hidden = !(watchAll && watchAll.checked);
    const list = liveBoard.querySelector("ul");
    list.replaceChildren(...rows.map((e) => el("li", { class: "live-" + e.state },
      el("span", { class: "agent-name", text: e.agentName || e.agent }),
      el("span", { class: "meta", text: e.state === "active" ? t("talking") : t("ringing") }),
      el("span", { class: "who", text: callerTitle(e.card) }))));
    if (!rows.length) list.append(el("li", { class: "muted", text: t("Nobody is on the phone") }));
  }

  function mine(agent) {
    return me && me.extensions.includes(agent);
  }

  // A supervisor may watch every call (read-only: no form on a colleague's call).
  const watchAll = document.getElementById("watch-all");
  function sendScope() {
    if (watchAll && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: watchAll.checked ? "subscribe_all" : "subscribe_own" }));
    }
  }
  if (watchAll) watchAll.addEventListener("change", () => { sendScope(); renderBoard(); });

  // --- one card per call -------------------------------------------------------------------

  function statusText(entry) {
    if (entry.interrupted && (entry.state === "ringing" || entry.state === "active")) {
      return t("PBX %(pbx)s unreachable: the call may have ended", { pbx: entry.interrupted });
    }
    switch (entry.state) {
      case "ringing": return entry.direction === "outbound" ? t("Calling…") : t("Ringing…");
      case "active": return t("In conversation");
      case "after": return entry.closeWarned ? t("Not saved: press Close again to discard what you typed")
        : t("Call ended — record what was agreed");
      case "lost": return t("Connection lost — this call may have ended");
      case "gone": return entry.reason === "answered_elsewhere" ? t("Answered by a colleague")
        : entry.reason === "caller_hangup" ? t("Caller hung up")
          : entry.reason === "transferred" ? t("Transferred") : t("Missed call");
      default: return "";
    }
  }

  /** The card's title: the client's name, else the number. A caller-ID name of an unknown
   * number comes from the carrier or the caller's phone and is only shown as such. */
  function callerTitle(card) {
    if (card.client) return card.client.name;
    if (card.number.withheld) return t("Withheld number");
    return card.number.display || card.number.raw || t("Unknown caller");
  }

  function notifyTitle(card) {
    if (card.client || !card.caller_name) return callerTitle(card);
    return `${callerTitle(card)} (${card.caller_name})`;
  }

  // Body parts are built once per call and reused: an event (answered, ended) updates the
  // card in place, so whatever is being typed into it — a new client's name, a search, the
  // after-call form — stays, focus included.
  function bodyParts(entry) {
    const card = entry.card;
    const parts = [];
    // the parts outlive this render: they change the card the entry holds at that time
    const refresh = async () => {
      if (!entry.card.client) return;
      try {
        entry.card.client = await cards.loadCard(entry.card.client.id);
        entry.details = null;
        render(entry);
      } catch (_) { /* keep what is shown */ }
    };
    const choose = async (clientId) => {
      entry.card.client = await cards.loadCard(clientId);
      entry.card.match = "single";
      entry.details = null;
      entry.pinned = false;
      render(entry);
      releaseStrip();
    };
    if (card.match === "single" && card.client) {
      if (!entry.details || entry.detailsFor !== card.client) {
        entry.details = cards.clientDetails(card.client, { inCall: true, onChange: refresh });
        entry.detailsFor = card.client;
      }
      parts.push(entry.details);
    } else if (card.match === "several") {
      if (!entry.choice) entry.choice = cards.candidates(card.candidates, (c) => choose(c.id));
      parts.push(entry.choice);
    } else if (card.match === "none" && card.offer) {
      if (!entry.offer) {
        entry.offer = el("div", { class: "unknown" },
          el("p", { class: "muted", text: t("This number is not in the directory.") }),
          cards.unknownOffer(card.offer, choose));
      }
      parts.push(entry.offer);
    } else if (card.match === "error") {
      if (!entry.failure) {
        entry.failure = el("p", { class: "error", text: t("The directory could not be read; the number is shown above.") });
      }
      parts.push(entry.failure);
    }
    if (card.client && !entry.watching && (entry.state === "active" || entry.state === "after")) {
      // one form per call and client, kept across re-renders so nothing typed is lost
      const key = card.client.id;
      if (!entry.form || entry.formKey !== key) {
        entry.form = cards.recordForm(card.client.id, () => entry.callId, () => {
          document.dispatchEvent(new CustomEvent("callpop:saved"));
          entry.pinned = false;
          refresh();
        }, { call: entry.call, number: card.number.display || card.number.raw || "" });
        entry.formKey = key;
      }
      parts.push(entry.form);
    }
    return parts;
  }

  /** Put exactly *children* into *parent*, touching nothing that is already in place. */
  function place(parent, children) {
    const current = [...parent.children];
    if (current.length === children.length && current.every((node, i) => node === children[i])) return;
    children.forEach((child, i) => {
      if (parent.children[i] !== child) parent.insertBefore(child, parent.children[i] || null);
    });
    while (parent.children.length > children.length) parent.lastElementChild.remove();
  }

  function render(entry) {
    const card = entry.card;
    if (!entry.head) {
      entry.head = el("header", { class: "call-head" });
      entry.body = el("div", { class: "call-body" });
      entry.node.append(entry.head, entry.body);
      entry.node.addEventListener("input", () => { entry.pinned = true; });
    }
    const number = card.number.withheld ? t("Withheld number") : (card.number.display || card.number.raw);
    const titled = callerTitle(card);
    const callerId = card.caller_name && (!card.client || card.caller_name !== card.client.name)
      ? el("span", { class: "meta caller-name", text: t("Caller ID: %(name)s", { name: card.caller_name }) }) : null;
    entry.head.replaceChildren(...[
      el("span", { class: "call-title", text: titled }),
      titled !== number ? el("span", { class: "call-number", text: number }) : null,
      card.client && card.client.company ? el("span", { class: "company", text: card.client.company }) : null,
      callerId,
      entry.watching && entry.agentName ? el("span", { class: "meta agent-name", text: t("with %(name)s", { name: entry.agentName }) }) : null,
      el("span", { class: "call-status", text: statusText(entry) }),
      entry.state === "after" && entry.talk ? el("span", { class: "meta call-talk", text: entry.talk }) : null,
      entry.state === "after" || entry.state === "gone" || entry.state === "lost"
        ? el("button", { type: "button", class: "small close", text: t("Close"), onclick: () => close(entry) })
        : null].filter(Boolean));
    entry.node.className = `call-card state-${entry.state}` + (entry.compact ? " compact" : "");
    place(entry.body, bodyParts(entry));
    if (entry.compact) entry.node.setAttribute("title", t("Show this call"));
  }

  function upsert(msg, state) {
    let entry = calls.get(msg.call);
    if (!entry && !msg.card) return null; // nothing to show yet (a card always comes with the call)
    if (!entry) {
      entry = { call: msg.call, node: el("article", { dataset: { call: msg.call } }), state, card: msg.card,
        direction: msg.direction, callId: null, agent: msg.agent, timer: null, reason: null };
      calls.set(msg.call, entry);
      if (pinnedEntry()) {
        // someone is typing into a card: the new call waits in the strip, nothing moves
        entry.compact = true;
        entry.node.addEventListener("click", () => expand(entry));
        strip.append(entry.node);
      } else {
        board.prepend(entry.node);
      }
    } else if (entry.state === "after" && state !== "after") {
      return entry; // the form is being filled in: a late duplicate must not wipe it
    }
    if (entry.timer) { clearTimeout(entry.timer); entry.timer = null; }
    if (msg.card && !(entry.card && entry.card.client && msg.card.match !== "single")) entry.card = msg.card;
    entry.state = state;
    entry.interrupted = null;
    entry.reason = null;
    entry.agent = msg.agent;
    entry.watching = !mine(msg.agent);
    entry.agentName = agentNames[msg.agent] || msg.agent;
    render(entry);
    refreshEmpty();
    return entry;
  }

  /** The card being typed into (the after-call form, a new client's name, a search). */
  function pinnedEntry() {
    for (const entry of calls.values()) {
      if (entry.pinned && !entry.compact && entry.state !== "gone") return entry;
    }
    return null;
  }

  /** A call from the strip opens as a full card below the one being typed into. */
  function expand(entry) {
    if (!entry.compact) return;
    entry.compact = false;
    const pinned = pinnedEntry();
    if (pinned) pinned.node.after(entry.node);
    else board.prepend(entry.node);
    render(entry);
    refreshEmpty();
  }

  /** Once nothing is being typed into, the waiting calls join the board. */
  function releaseStrip() {
    if (pinnedEntry()) return;
    for (const entry of calls.values()) {
      if (entry.compact) {
        entry.compact = false;
        board.prepend(entry.node);
        render(entry);
      }
    }
  }

  function grey(msg, reason) {
    const entry = calls.get(msg.call);
    if (!entry || entry.state === "after") return;
    if (entry.watching && msg.agent !== entry.agent) return; // another phone of a watched call
    if (entry.timer) clearTimeout(entry.timer);
    entry.state = "gone";
    entry.reason = entry.reason || reason; // the first reason is the precise one
    render(entry);
    alerts();
    renderBoard();
    entry.timer = setTimeout(() => remove(msg.call), dismissAfter);
  }

  /** The manager closes a card: what they typed into it and did not save goes only at a
   * second Close (else it stays a draft, brought back by the next page load). */
  function close(entry) {
    if (entry.form && entry.form.hasUnsent() && !entry.closeWarned) {
      entry.closeWarned = true;
      render(entry);
      return;
    }
    if (entry.form) entry.form.discardDraft();
    remove(entry.call);
  }

  function remove(call) {
    const entry = calls.get(call);
    if (!entry) return;
    if (entry.timer) clearTimeout(entry.timer);
    entry.node.remove();
    calls.delete(call);
    refreshEmpty();
    releaseStrip();
    alerts();
  }

  // --- messages ----------------------------------------------------------------------------

  // Ids of the live messages applied: with several callpop instances, a tab that moved from
  // one to the other may be sent a message both made; the second copy is ignored.
  const seenIds = new Set();
  function firstTime(id) {
    if (seenIds.has(id)) return false;
    seenIds.add(id);
    if (seenIds.size > 2000) seenIds.delete(seenIds.values().next().value);
    return true;
  }

  function handle(msg) {
    if (typeof msg.id === "string" && !firstTime(msg.id)) return;
    switch (msg.type) {
      case "hello":
        me = msg.user;
        if (socket && new URL(socket.url).host !== window.location.host) {
          // the socket had to go to another instance: is this page's own one gone? (failover.js)
          const live = new URL(socket.url);
          live.protocol = live.protocol === "wss:" ? "https:" : "http:";
          document.dispatchEvent(new CustomEvent("callpop:unreachable", { detail: { live: live.origin } }));
        }
        dismissAfter = (msg.dismiss_after || config.dismissAfter || 8) * 1000;
        backoff = 1000;
        setConnection("Connected");
        if (watchAll && watchAll.checked) sendScope(); // a new socket starts with the own scope
        break;
      case "snapshot": {
        const live = new Set(msg.calls.map((m) => m.call));
        for (const [call, entry] of calls) {
          if (!live.has(call) && (entry.state === "ringing" || entry.state === "active" || entry.state === "lost")) {
            remove(call);
          }
        }
        msg.calls.forEach(handle);
        break;
      }
      case "call.ringing": {
        const fresh = !calls.has(msg.call);
        const entry = upsert(msg, "ringing");
        if (fresh && entry && msg.direction !== "outbound" && !entry.watching) { // not for the call I dial
          notify(entry);
          announce(entry);
        }
        alerts();
        break;
      }
      case "call.answered":
        if (mine(msg.agent) || calls.has(msg.call)) upsert(msg, "active");
        alerts();
        break;
      case "call.ring_stopped":
        grey(msg, msg.reason);
        break;
      case "call.transferred":
        if (msg.agent === msg.to_agent) upsert(msg, "active");
        else grey(msg, "transferred");
        break;
      case "call.ended": {
        document.dispatchEvent(new CustomEvent("callpop:call-ended", { detail: msg }));
        const entry = calls.get(msg.call);
        if (!entry) break;
        if (!entry.watching && (entry.state === "active" || (msg.answered_by || []).includes(entry.agent))) {
          entry.callId = msg.call_id;
          entry.talk = cards.talkText(msg);  // the client's calls list's words
          upsert({ call: msg.call, agent: entry.agent }, "after");
        } else {
          grey(msg, msg.outcome === "missed" ? "caller_hangup" : "answered_elsewhere");
        }
        break;
      }
      case "pbx.status": {
        // the link to one PBX dropped: what the cards say of its calls in progress may be
        // stale until it is back (a fresh snapshot then puts every card right); the cards
        // of the other PBXs' calls are not concerned. Its call ids start with msg.calls
        // ("office2:"), or carry no PBX prefix at all for the first PBX ("").
        const prefix = typeof msg.calls === "string" ? msg.calls : "";
        const ofThisPbx = (call) => (prefix ? call.startsWith(prefix) : !call.includes(":"));
        const name = String(msg.pbx || "");
        if (msg.connected) pbxDown.delete(name); else pbxDown.add(name);
        showPbxDown();
        for (const entry of calls.values()) {
          if ((entry.state === "ringing" || entry.state === "active") && ofThisPbx(String(entry.call))) {
            entry.interrupted = msg.connected ? null : name;
            render(entry);
          }
        }
        break;
      }
      case "kpi_changed":
        document.dispatchEvent(new CustomEvent("callpop:kpi", { detail: msg }));
        break;
      case "error":
        console.warn("callpop: server says", msg.error, msg.detail);
        break;
      default:
        break;
    }
    if (msg.type.startsWith("call.")) alerts();
  }

  // Where the socket may go: this page's own instance first, then the others of
  // [push] instance_urls; each reconnect tries the next, so a desk whose instance died
  // gets its pops from another (docs/websocket.md, "Several instances").
  const socketUrls = (() => {
    const here = new URL(config.ws || "/ws", window.location.href);
    const urls = [here];
    for (const base of config.wsUrls || []) {
      const there = new URL(config.ws || "/ws", base);
      if (!urls.some((u) => u.origin === there.origin)) urls.push(there);
    }
    return urls.map((u) => {
      u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
      return u.href;
    });
  })();
  let tries = 0;

  function connect() {
    clearTimeout(retryTimer);
    const url = socketUrls[tries % socketUrls.length];
    tries += 1;
    setConnection("Connecting…");
    const ws = new WebSocket(url);
    socket = ws;
    ws.addEventListener("message", (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (msg && typeof msg.type === "string") handle(msg);
    });
    ws.addEventListener("close", (ev) => {
      if (socket !== ws) return;
      socket = null;
      if (ev.code === 4001) {
        window.location.assign("/login");
        return;
      }
      connectionLost();
      const wait = backoff;
      backoff = Math.min(backoff * 2, 30000);
      setConnection("Disconnected", t("reconnecting in %(s)s s", { s: Math.round(wait / 1000) }));
      retryTimer = setTimeout(connect, wait);
    });
  }

  /** The server is gone (stopped, restarted, network): what was live is no longer known. */
  function connectionLost() {
    for (const entry of calls.values()) {
      if (entry.state === "ringing" || entry.state === "active") {
        entry.state = "lost";
        render(entry);
      }
    }
    alerts();
    renderBoard();
  }

  // --- after-call forms not yet saved (drafts.js): back after a reload or a move ------------

  /** A card in the after-call state for a draft of a call this page has no card for. */
  async function restore(draft) {
    let client;
    try {
      client = await cards.loadCard(draft.client);
    } catch (_) {
      return; // not readable now (gone, or no access): the draft stays for the next load
    }
    if (calls.has(draft.call)) return;
    const number = String(draft.number || "");
    const entry = { call: draft.call, node: el("article", { dataset: { call: draft.call } }), state: "after",
      card: { client, match: "single", caller_name: null, number: { display: number, raw: number, withheld: false } },
      direction: "inbound", callId: draft.callId || null, agent: null, timer: null, reason: null, restored: true };
    calls.set(draft.call, entry);
    board.prepend(entry.node);
    render(entry);
    refreshEmpty();
  }

  if (window.callpopDrafts) {
    for (const draft of window.callpopDrafts.all()) {
      if (draft.call && Number.isInteger(draft.client)) restore(draft);
    }
  }

  refreshEmpty();
  connect();
  return { get socket() { return socket; }, calls, handle, connect };
})();
window.callpopDesk = desk;
