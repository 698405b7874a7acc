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
  const calls = new Map(); // call id -> {node, state, card, callId, agent, timer}
  let socket = null;
  let backoff = 1000;
  let retryTimer = null;
  let me = null;
  let dismissAfter = (config.dismissAfter || 8) * 1000;

  function setConnection(state, detail) {
    stateLabel.dataset.state = state;
    stateLabel.textContent = detail ? `${t(state)} — ${detail}` : t(state);
  }

  function refreshEmpty() {
    empty.hidden = calls.size > 0;
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
  if (watchAll) watchAll.addEventListener("change", sendScope);

  // --- one card per call -------------------------------------------------------------------

  function statusText(entry) {
    if (entry.interrupted && (entry.state === "ringing" || entry.state === "active")) {
      return t("Connection to the PBX lost: the call may have ended");
    }
    switch (entry.state) {
      case "ringing": return entry.direction === "outbound" ? t("Calling…") : t("Ringing…");
      case "active": return t("In conversation");
      case "after": return t("Call ended — record what was agreed");
      case "gone": return entry.reason === "answered_elsewhere" ? t("Answered by a colleague")
        : entry.reason === "caller_hangup" ? t("Caller hung up")
          : entry.reason === "transferred" ? t("Transferred") : t("Missed call");
      default: return "";
    }
  }

  function callerTitle(card) {
    if (card.client) return card.client.name;
    if (card.caller_name) return card.caller_name;
    if (card.number.withheld) return t("Withheld number");
    return card.number.display || card.number.raw || t("Unknown caller");
  }

  function renderBody(entry) {
    const card = entry.card;
    const body = el("div", { class: "call-body" });
    const refresh = async () => {
      if (!card.client) return;
      try {
        card.client = await cards.loadCard(card.client.id);
        render(entry);
      } catch (_) { /* keep what is shown */ }
    };
    const choose = async (clientId) => {
      card.client = await cards.loadCard(clientId);
      card.match = "single";
      render(entry);
    };
    if (card.match === "single" && card.client) {
      body.append(cards.clientDetails(card.client, { inCall: true, onChange: null }));
    } else if (card.match === "several") {
      body.append(cards.candidates(card.candidates, (c) => choose(c.id)));
    } else if (card.match === "none" && card.offer) {
      body.append(el("p", { class: "muted", text: t("This number is not in the directory.") }),
        cards.unknownOffer(card.offer, choose));
    } else if (card.match === "error") {
      body.append(el("p", { class: "error", text: t("The directory could not be read; the number is shown above.") }));
    }
    if (card.client && !entry.watching && (entry.state === "active" || entry.state === "after")) {
      // one form per call and client, kept across re-renders so nothing typed is lost
      const key = card.client.id;
      if (!entry.form || entry.formKey !== key) {
        entry.form = cards.recordForm(card.client.id, () => entry.callId, () => {
          document.dispatchEvent(new CustomEvent("callpop:saved"));
          refresh();
        });
        entry.formKey = key;
      }
      body.append(entry.form);
    }
    return body;
  }

  function render(entry) {
    const card = entry.card;
    const number = card.number.withheld ? t("Withheld number") : (card.number.display || card.number.raw);
    const header = el("header", { class: "call-head" },
      el("span", { class: "call-title", text: callerTitle(card) }),
      el("span", { class: "call-number", text: number }),
      card.client && card.client.company ? el("span", { class: "company", text: card.client.company }) : null,
      card.caller_name && card.client && card.caller_name !== card.client.name ? el("span", { class: "meta caller-name", text: t("Caller ID: %(name)s", { name: card.caller_name }) }) : null,
      el("span", { class: "call-status", text: statusText(entry) }),
      entry.state === "after" || entry.state === "gone"
        ? el("button", { type: "button", class: "small close", text: t("Close"), onclick: () => remove(entry.call) })
        : null);
    entry.node.className = `call-card state-${entry.state}`;
    entry.node.replaceChildren(header, renderBody(entry));
  }

  function upsert(msg, state) {
    let entry = calls.get(msg.call);
    if (!entry && !msg.card) return null; // nothing to show yet (a card always comes with the call)
    if (!entry) {
      entry = { call: msg.call, node: el("article", { dataset: { call: msg.call } }), state, card: msg.card,
        direction: msg.direction, callId: null, agent: msg.agent, timer: null, reason: null };
      calls.set(msg.call, entry);
      board.prepend(entry.node);
    } else if (entry.state === "after" && state !== "after") {
      return entry; // the form is being filled in: a late duplicate must not wipe it
    }
    if (entry.timer) { clearTimeout(entry.timer); entry.timer = null; }
    if (msg.card && !(entry.card && entry.card.client && msg.card.match !== "single")) entry.card = msg.card;
    entry.state = state;
    entry.interrupted = false;
    entry.reason = null;
    entry.agent = msg.agent;
    entry.watching = !mine(msg.agent);
    render(entry);
    refreshEmpty();
    return entry;
  }

  function grey(msg, reason) {
    const entry = calls.get(msg.call);
    if (!entry || entry.state === "after") return;
    if (entry.watching && msg.agent !== entry.agent) return; // another phone of a watched call
    if (entry.timer) clearTimeout(entry.timer);
    entry.state = "gone";
    entry.reason = entry.reason || reason; // the first reason is the precise one
    render(entry);
    entry.timer = setTimeout(() => remove(msg.call), dismissAfter);
  }

  function remove(call) {
    const entry = calls.get(call);
    if (!entry) return;
    if (entry.timer) clearTimeout(entry.timer);
    entry.node.remove();
    calls.delete(call);
    refreshEmpty();
  }

  function notify(entry) {
    if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
    const card = entry.card;
    const n = new Notification(t("Incoming call"), { body: callerTitle(card), tag: entry.call });
    n.onclick = () => {
      window.focus();
      entry.node.scrollIntoView({ block: "center" });
      entry.node.classList.add("flash");
      n.close();
    };
  }

  // --- messages ----------------------------------------------------------------------------

  function handle(msg) {
    switch (msg.type) {
      case "hello":
        me = msg.user;
        dismissAfter = (msg.dismiss_after || config.dismissAfter || 8) * 1000;
        backoff = 1000;
        setConnection("Connected");
        if (watchAll && watchAll.checked) sendScope(); // a new socket starts with the own scope
        break;
      case "snapshot": {
        const live = new Set(msg.calls.map((m) => m.call));
        for (const [call, entry] of calls) {
          if (!live.has(call) && (entry.state === "ringing" || entry.state === "active")) remove(call);
        }
        msg.calls.forEach(handle);
        break;
      }
      case "call.ringing": {
        const fresh = !calls.has(msg.call);
        const entry = upsert(msg, "ringing");
        if (fresh && entry && msg.direction !== "outbound") notify(entry); // not for the call I dial
        break;
      }
      case "call.answered":
        if (mine(msg.agent) || calls.has(msg.call)) upsert(msg, "active");
        break;
      case "call.ring_stopped":
        grey(msg, msg.reason);
        break;
      case "call.transferred":
        if (msg.agent === msg.to_agent) upsert(msg, "active");
        else grey(msg, "transferred");
        break;
      case "call.ended": {
        const entry = calls.get(msg.call);
        if (!entry) break;
        if (!entry.watching && (entry.state === "active" || (msg.answered_by || []).includes(entry.agent))) {
          entry.callId = msg.call_id;
          upsert({ call: msg.call, agent: entry.agent }, "after");
        } else {
          grey(msg, msg.outcome === "missed" ? "caller_hangup" : "answered_elsewhere");
        }
        break;
      }
      case "pbx.status":
        // the link to the PBX dropped: what the cards say of calls in progress may be stale
        // until it is back (a fresh snapshot then puts every card right)
        for (const entry of calls.values()) {
          if (entry.state === "ringing" || entry.state === "active") {
            entry.interrupted = !msg.connected;
            render(entry);
          }
        }
        break;
      case "kpi_changed":
        document.dispatchEvent(new CustomEvent("callpop:kpi", { detail: msg }));
        break;
      case "error":
        console.warn("callpop: server says", msg.error, msg.detail);
        break;
      default:
        break;
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    const url = new URL(config.ws || "/ws", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
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
      const wait = backoff;
      backoff = Math.min(backoff * 2, 30000);
      setConnection("Disconnected", t("reconnecting in %(s)s s", { s: Math.round(wait / 1000) }));
      retryTimer = setTimeout(connect, wait);
    });
  }

  // --- notifications permission: asked once, on a click ---------------------------------------

  const notifyButton = document.getElementById("enable-notifications");
  if (notifyButton) {
    if (!("Notification" in window) || Notification.permission !== "default") notifyButton.hidden = true;
    notifyButton.addEventListener("click", async () => {
      await Notification.requestPermission();
      notifyButton.hidden = true;
    });
  }

  refreshEmpty();
  connect();
  return { get socket() { return socket; }, calls, handle, connect };
})();
window.callpopDesk = desk;
