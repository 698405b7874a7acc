/* callpop: a client's card (the same on the desk's pop and on the client page), the
 * after-call form, and the offers for an unknown number. All text goes in via el() /
 * textContent; nothing from the server is ever parsed as HTML. The after-call form is
 * record_form.js (cards.recordForm).
 */
"use strict";

const cards = (() => {
  const { t, el, api, when, day, duration, money, momentField, momentPlaceholder, parseMoment, showError } = callpop;

  // a promise is "open" until kept; an agreement is "open" while the deal is in progress:
  // two words in Russian, so two message ids
  const PROMISE_STATUS = () => ({ open: t("open"), kept: t("kept"), broken: t("broken"), cancelled: t("cancelled") });
  const AGREEMENT_STATUS = () => ({ open: t("in progress (agreement)"), won: t("won"), lost: t("lost"),
    cancelled: t("cancelled (agreement)") });
  const CLAMP = 160; // characters of a promise or note shown before "more"

  function person(ref) {
    return ref && ref.name ? ref.name : t("unknown");
  }

  function section(title, items, renderItem, more, collapsed) {
    const list = el("ul", { class: "items" }, items.map(renderItem));
    // a long history stays one click away instead of pushing the card off the screen
    const box = collapsed && items.length
      ? el("details", { class: "card-section" }, el("summary", { text: `${title} (${items.length}${more ? "+" : ""})` }))
      : el("section", { class: "card-section" }, el("h4", { text: title }));
    if (!items.length) box.append(el("p", { class: "muted", text: t("None") }));
    else box.append(list);
    if (more) box.append(more(list));
    return box;
  }

  /** Long text shows its start; a click shows the rest. */
  function clamped(cls, text) {
    const node = el("span", { class: cls, text });
    if (text && text.length > CLAMP) {
      node.classList.add("clamped");
      node.setAttribute("title", t("Click to show all"));
      node.addEventListener("click", () => node.classList.toggle("clamped"));
    }
    return node;
  }

  /** A "more" button paging one section through /api/clients/{id}/history. */
  function moreButton(clientId, name, renderItem, shown) {
    return (list) => {
      let offset = shown;
      const button = el("button", { type: "button", class: "link", text: t("Show more") });
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          const page = await api("GET", `/api/clients/${clientId}/history?section=${name}&offset=${offset}&limit=20`);
          page.items.forEach((item) => list.append(renderItem(item)));
          offset += page.items.length;
          button.disabled = false;
          button.hidden = !page.has_more;
        } catch (err) {
          button.replaceWith(el("p", { class: "error", text: err.message }));
        }
      });
      return button;
    };
  }

  /** "Later": a new due time for an open promise, typed in place. */
  function rescheduleButton(p, li, onChange) {
    const button = el("button", { type: "button", class: "small", text: t("Reschedule") });
    button.addEventListener("click", () => {
      const base = p.due_at && new Date(p.due_at) > new Date() ? new Date(p.due_at) : new Date(Date.now() + 24 * 3600 * 1000);
      if (!p.due_at || new Date(p.due_at) <= new Date()) base.setHours(10, 0, 0, 0);
      const input = momentField({ name: "due_at", "aria-label": t("New due date") }, base);
      const error = el("span", { class: "error", hidden: true });
      const save = el("button", { type: "submit", class: "small", text: t("Save") });
      const form = el("form", { class: "reschedule" }, input, save, error);
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        error.hidden = true;
        const due = parseMoment(input.value);
        if (!due) {
          showError(error, t("Enter the date and time as %(pattern)s", { pattern: momentPlaceholder() }));
          return;
        }
        try {
          await api("PATCH", `/api/promises/${p.id}`, { due_at: due.toISOString() });
          form.remove();
          li.classList.remove("overdue");
          li.querySelector(".meta").textContent = t("due %(when)s", { when: when(due.toISOString()) });
          if (onChange) onChange();
        } catch (err) {
          showError(error, err);
        }
      });
      button.hidden = true;
      li.append(form);
      input.focus();
    });
    return button;
  }

  function promiseItem(p, onChange, options = {}) {
    const li = el("li", { class: "promise" + (p.overdue ? " overdue" : ""), dataset: { promise: p.id } },
      clamped("promise-text", p.text),
      el("span", { class: "meta" },
        p.due_at ? (p.overdue ? t("overdue since %(when)s", { when: when(p.due_at) })
          : t("due %(when)s", { when: when(p.due_at) })) : t("no due date"),
        " · ", t("promised by %(name)s", { name: person(p.made_by) })));
    if (p.status === "open") {
      const status = el("span", { class: "promise-actions" });
      for (const [value, label] of [["kept", t("Kept")], ["broken", t("Broken")]]) {
        status.append(el("button", {
          type: "button", class: "small", text: label,
          onclick: async (ev) => {
            ev.target.disabled = true;
            try {
              await api("PATCH", `/api/promises/${p.id}`, { status: value });
              li.classList.add("closed");
              status.replaceChildren(el("span", { class: "badge", text: PROMISE_STATUS()[value] }));
              if (onChange) onChange();
            } catch (err) {
              ev.target.disabled = false;
              status.append(el("span", { class: "error", text: err.message }));
            }
          },
        }));
      }
      if (options.reschedule !== false) status.append(rescheduleButton(p, li, onChange));
      li.append(status);
    } else {
      li.append(el("span", { class: "badge", text: PROMISE_STATUS()[p.status] || p.status }));
    }
    return li;
  }

  function agreementItem(a) {
    return el("li", { class: "agreement status-" + a.status },
      el("span", { text: a.title }),
      a.amount ? el("span", { class: "amount", text: money(a.amount, a.currency) }) : null,
      el("span", { class: "badge", text: AGREEMENT_STATUS()[a.status] || a.status }),
      el("span", { class: "meta", text: `${person(a.made_by)} · ${day(a.created_at)}` }));
  }

  /** How long an answered call talked, null for any other: a past call of the client's
   * calls list and a call.ended on the desk alike (the same fields, docs/websocket.md). When
   * callpop did not see the answer (it learned the call from the PBX's channel list after a
   * restart) or the end (a lost PBX link, a row closed by a sweep after a kill), the talk is
   * only known to be at least this long, and is shown so, never as the talk. */
  function talkText(c) {
    if (c.outcome !== "answered") return null;
    const d = { duration: duration(c.talk_seconds || 0) };
    if (c.answer_unseen) return t("talk ≥ %(duration)s, answer time unknown", d);
    if (c.end_unseen) return t("talk ≥ %(duration)s, end time unknown", d);
    return t("talked %(duration)s", d);
  }

  function callItem(c) {
    const who = (c.talked || []).map(person).join(", ");
    // a call still going on has no outcome yet: it is not a missed call
    const outcome = talkText(c)
      || (c.outcome === "missed" ? t("missed")
      // its end was not seen and nobody was seen answering: said so, never "in progress"
      : c.outcome === "unknown" ? t("outcome unknown") : t("in progress"));
    return el("li", { class: "call outcome-" + (c.outcome || "unknown") },
      el("span", { text: when(c.started_at) }),
      el("span", { class: "meta", text: `${c.direction === "outbound" ? t("outgoing") : t("incoming")} · ${outcome}` }),
      who ? el("span", { class: "who", text: who }) : null);
  }

  function noteItem(n) {
    return el("li", { class: "note" },
      clamped("note-text", n.text),
      el("span", { class: "meta", text: `${person(n.author)} · ${when(n.created_at)}` }));
  }

  /** The history of one client: what the directory's ClientCard.to_json() holds. */
  function clientDetails(client, options = {}) {
    const id = client.id;
    // in a call card the header above already shows the name and company
    // in a call the summary strip already says regular/new and whose client this is
    const head = options.inCall
      ? el("div", { class: "client-head" },
        el("a", { class: "client-link", href: `/clients/${id}`, target: "_blank", rel: "noopener", text: t("Client page") }))
      : el("div", { class: "client-head" },
        el("a", { class: "client-name", href: `/clients/${id}`, text: client.name }),
        client.company ? el("span", { class: "company", text: client.company }) : null);
    const shownPhones = options.inCall && (client.phones || []).length < 2 ? [] : (client.phones || []);
    const phones = el("div", { class: "phones" },
      shownPhones.map((p) => el("span", { class: "phone" },
        el("span", { text: p.display || p.raw }), p.label ? el("span", { class: "meta", text: ` (${p.label})` }) : null,
        options.dial ? el("button", { type: "button", class: "small call-button", text: t("Call"),
          onclick: (ev) => options.dial(p, ev.target) }) : null)));
    const pm = client.promises || [];
    const long = (list) => options.inCall && list.length > 2;
    return el("div", { class: "client" }, options.inCall ? summary(client) : head,
      options.inCall ? head : summary(client), phones, el("div", { class: "sections" },
      section(t("Open promises"), pm, (p) => promiseItem(p, options.onChange),
        client.promises_more ? moreButton(id, "promises", promiseItem, pm.length) : null),
      section(t("Agreements"), client.agreements || [], agreementItem,
        client.agreements_more ? moreButton(id, "agreements", agreementItem, client.agreements.length) : null,
        long(client.agreements || [])),
      section(t("Last contacts"), client.last_calls || [], callItem,
        client.calls_more ? moreButton(id, "calls", callItem, client.last_calls.length) : null,
        options.inCall && (client.last_calls || []).length > 0),
      section(t("Notes"), client.notes || [], noteItem,
        client.notes_more ? moreButton(id, "notes", noteItem, client.notes.length) : null, long(client.notes || []))));
  }

  /** What a manager needs in the first two seconds: who this is to us, what is overdue,
   * whose client, how much is in play. */
  function summary(client) {
    const overdue = (client.promises || []).filter((p) => p.overdue && p.status === "open").length;
    const open = (client.agreements || []).filter((a) => a.status === "open");
    const totals = new Map();
    for (const a of open) {
      if (a.amount) totals.set(a.currency || "RUB", (totals.get(a.currency || "RUB") || 0) + Number(a.amount));
    }
    const money_ = [...totals].map(([cur, sum]) => money(sum, cur)).join(" + ");
    return el("div", { class: "summary" },
      el("span", { class: "pill status-" + client.status,
        text: client.status === "regular" ? t("Regular client") : t("New client") }),
      el("span", { class: "pill " + (overdue ? "bad" : "quiet"),
        text: overdue ? t("Overdue promises: %(n)s", { n: overdue }) : t("No overdue promises") }),
      el("span", { class: "pill quiet", text: client.responsible
        ? t("Responsible: %(name)s", { name: client.responsible.name }) : t("No responsible manager") }),
      el("span", { class: "pill " + (open.length ? "money" : "quiet"), text: open.length
        ? t("Open agreements: %(n)s", { n: open.length }) + (money_ ? ` · ${money_}` : "") : t("No open agreements") }));
  }

  /** Unknown number: create a client with it, or attach it to one found by search. */
  function unknownOffer(offer, onClient) {
    const error = el("p", { class: "error", hidden: true });
    // the caller-ID name comes from the carrier or the caller's phone ("MEGAFON", "Мама"):
    // offered with a click, never filled in as if it were the client's name
    const name = el("input", { type: "text", name: "name", maxlength: 300, required: true, placeholder: t("Name") });
    const callerName = offer.create && offer.create.name;
    const useCallerName = callerName ? el("button", { type: "button", class: "link use-caller-name",
      text: t("Use the caller ID name: %(name)s", { name: callerName }),
      onclick: () => { name.value = callerName; name.dispatchEvent(new Event("input", { bubbles: true })); name.focus(); } }) : null;
    const company = el("input", { type: "text", name: "company", maxlength: 300, placeholder: t("Company") });
    const phone = el("input", { type: "text", name: "phone", value: offer.create.phone || "", maxlength: 64 });
    const create = el("form", { class: "create-client" },
      el("h4", { text: t("New client") }), name, useCallerName, company, phone,
      el("button", { type: "submit", text: t("Create client") }));
    create.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      try {
        const body = { name: name.value, company: company.value || null };
        if (phone.value.trim()) body.phones = [{ number: phone.value }];
        const client = await api("POST", "/api/clients", body);
        onClient(client.id);
      } catch (err) {
        showError(error, err.message);
      }
    });
    const query = el("input", { type: "search", name: "q", maxlength: 100, placeholder: t("Search by name, company or phone") });
    const results = el("ul", { class: "search-results" });
    const attach = el("form", { class: "attach-number" },
      el("h4", { text: t("Attach this number to a client") }), query,
      el("button", { type: "submit", text: t("Search") }), results);
    attach.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      if (!query.value.trim()) return;
      try {
        const page = await api("GET", "/api/clients?limit=10&q=" + encodeURIComponent(query.value.trim()));
        results.replaceChildren(...page.items.map((c) => el("li", {},
          el("span", { text: c.name }), c.company ? el("span", { class: "meta", text: ` · ${c.company}` }) : null,
          el("button", { type: "button", class: "small", text: t("Attach"), onclick: async () => {
            try {
              await api("POST", `/api/clients/${c.id}/phones`, { number: offer.attach.phone });
              onClient(c.id);
            } catch (err) {
              showError(error, err.message);
            }
          } }))));
        if (!page.items.length) results.append(el("li", { class: "muted", text: t("Nothing found") }));
      } catch (err) {
        showError(error, err.message);
      }
    });
    const box = el("div", { class: "offer" }, create, attach, error);
    box.addEventListener("input", () => { error.hidden = true; });
    return box;
  }

  /** Several clients share the number: let the manager pick. */
  function candidates(list, onPick) {
    return el("div", { class: "candidates" },
      el("h4", { text: t("Several clients have this number — who is calling?") }),
      el("ul", {}, list.map((c) => el("li", {},
        el("span", { class: "client-name", text: c.name }),
        c.company ? el("span", { class: "meta", text: ` · ${c.company}` }) : null,
        c.responsible ? el("span", { class: "meta", text: ` · ${c.responsible.name}` }) : null,
        el("button", { type: "button", class: "small", text: t("This one"), onclick: () => onPick(c) })))));
  }

  async function loadCard(clientId) {
    return api("GET", `/api/clients/${clientId}/card`);
  }

  // recordForm: record_form.js
  return { clientDetails, unknownOffer, candidates, loadCard, promiseItem, talkText };
})();
