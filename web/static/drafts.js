/* callpop: what a manager typed into a record form and has not yet seen saved, kept in
 * this browser (localStorage) until the server confirms the save, so that a reload, a lost
 * connection or the page moving to another callpop instance never loses it.
 *
 * One draft per user, client and call ("callpop.draft.<user>.<client>.<call>"; "-" for a
 * form outside a call): the form's texts, the Idempotency-Key each part was last sent
 * with (a resend of the same content is recognised by the server and stored once) and
 * whether Save was pressed. Nothing else: no token, no cookie, no card. Standalone: the
 * other scripts use window.callpopDrafts.
 */
"use strict";

const callpopDrafts = (() => {
  const config = JSON.parse(document.getElementById("callpop-config").textContent);
  const prefix = `callpop.draft.${config.user}.`;
  const store = (() => {
    try {
      const s = window.localStorage;
      s.getItem(prefix);
      return s;
    } catch (_) {
      return null; // storage switched off: forms still work, nothing survives a reload
    }
  })();
  const forms = new Set(); // the record forms on this page: {hasText()}

  function keyOf(client, call) {
    return `${prefix}${client}.${call || "-"}`;
  }

  function parse(raw) {
    try {
      const draft = JSON.parse(raw);
      return draft && typeof draft === "object" && draft.fields ? draft : null;
    } catch (_) {
      return null;
    }
  }

  function read(client, call) {
    return store ? parse(store.getItem(keyOf(client, call))) : null;
  }

  function put(draft) {
    if (!store) return;
    try {
      store.setItem(keyOf(draft.client, draft.call), JSON.stringify(draft));
    } catch (_) { /* full: the form on the page still holds it */ }
  }

  function write(draft) {
    put({ ...draft, user: config.user, at: Date.now() });
  }

  function clear(client, call) {
    if (store) store.removeItem(keyOf(client, call));
  }

  /** This user's drafts, oldest first. */
  function all() {
    if (!store) return [];
    const found = [];
    for (let i = 0; i < store.length; i += 1) {
      const key = store.key(i);
      if (key && key.startsWith(prefix)) {
        const draft = parse(store.getItem(key));
        if (draft) found.push(draft);
      }
    }
    return found.sort((a, b) => (a.at || 0) - (b.at || 0));
  }

  /** Drafts brought from another instance's page (another origin, another storage): the
   * newer of two copies of one draft wins. */
  function adopt(list) {
    let count = 0;
    for (const draft of Array.isArray(list) ? list : []) {
      if (!draft || draft.user !== config.user || !draft.fields || !Number.isInteger(draft.client)) continue;
      const here = read(draft.client, draft.call);
      if (!here || (here.at || 0) < (draft.at || 0)) put(draft);
      count += 1;
    }
    return count;
  }

  /** A new Idempotency-Key (random; crypto.randomUUID needs HTTPS, this does not). */
  function newKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** Is anything being typed on this page that a move would interrupt? */
  function typing() {
    return [...forms].some((form) => form.hasText());
  }

  return { read, write, clear, all, adopt, newKey, typing, forms };
})();
window.callpopDrafts = callpopDrafts;
