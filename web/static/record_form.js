/* callpop: the form a manager records a call's outcome in — a promise, an agreement, a
 * note — on the desk's after-call card and on the client's page (cards.recordForm).
 */
"use strict";

(() => {
  const { t, el, api, momentField, momentPlaceholder, parseMoment, showError } = callpop;
  const RETRY_MS = 10000; // a save that got no answer is sent again this often while the page stays

  /** Promise, agreement and note for a client, linked to the call when there is one.
   *
   * What is typed is a draft (drafts.js) from the first key press until the server has
   * confirmed its save: a reload, or the page moving to another instance, brings it back.
   * Each part is sent with an Idempotency-Key kept with the draft, the same for the same
   * content, so a save sent again after an answer that never came is stored once. A draft
   * whose Save was pressed but not confirmed is sent again when its form is built anew.
   * *options.call*: the live call the form belongs to (the draft's key on the desk);
   * *options.number*: the number shown on a card brought back from a draft. */
  function recordForm(clientId, callId, onSaved, options = {}) {
    const drafts = window.callpopDrafts;
    const draftCall = options.call || null;
    const tomorrow = new Date(Date.now() + 24 * 3600 * 1000);
    tomorrow.setHours(10, 0, 0, 0);
    const promiseText = el("textarea", { name: "promise_text", rows: 2, maxlength: 2000,
      placeholder: t("What did you promise?") });
    const promiseDue = momentField({ name: "promise_due" }, tomorrow);
    const agreementTitle = el("input", { type: "text", name: "agreement_title", maxlength: 300,
      placeholder: t("Deal, contract or arrangement") });
    const agreementAmount = el("input", { type: "number", name: "agreement_amount", min: 0, step: "0.01",
      placeholder: t("Amount") });
    const noteText = el("textarea", { name: "note_text", rows: 2, maxlength: 10000, placeholder: t("Note") });
    const fields = { promise_text: promiseText, promise_due: promiseDue, agreement_title: agreementTitle,
      agreement_amount: agreementAmount, note_text: noteText };
    const error = el("p", { class: "error", hidden: true });
    const done = el("p", { class: "saved", hidden: true });
    const save = el("button", { type: "submit", text: t("Save") });
    const form = el("form", { class: "record-form" },
      el("h4", { text: t("Record what was agreed") }),
      el("label", {}, t("Promise"), promiseText), el("label", {}, t("Due"), promiseDue),
      el("label", {}, t("Agreement"), agreementTitle), el("label", {}, t("Amount"), agreementAmount),
      el("label", {}, t("Note"), noteText), error, done, save);
    const currentCall = () => (typeof callId === "function" ? callId() : callId); // known once the call has ended
    const hasText = () => [promiseText, agreementTitle, noteText].some((input) => input.value.trim() !== "");

    let draft = drafts ? drafts.read(clientId, draftCall) : null;
    if (draft) {
      for (const [name, input] of Object.entries(fields)) {
        if (typeof draft.fields[name] === "string") input.value = draft.fields[name];
      }
    }

    /** Keep what the form holds now (plus *changes*); forget it once nothing is left. */
    function keep(changes = {}) {
      if (!drafts) return;
      const next = { client: clientId, call: draftCall, sent: {}, pending: false, ...(draft || {}), ...changes };
      if (!hasText()) {
        drafts.clear(clientId, draftCall);
        draft = null;
        return;
      }
      next.fields = Object.fromEntries(Object.entries(fields).map(([name, input]) => [name, input.value]));
      next.callId = currentCall() || next.callId || null;
      if (options.number) next.number = options.number;
      draft = next;
      drafts.write(draft);
    }

    form.addEventListener("input", () => { error.hidden = true; done.hidden = true; keep(); });

    let retry = null;
    async function submit() {
      clearTimeout(retry);
      error.hidden = true;
      done.hidden = true;
      const call = currentCall() || (draft && draft.callId) || null;
      const link = call ? { call_id: call } : {};
      const jobs = [];
      if (promiseText.value.trim()) {
        const dueAt = promiseDue.value.trim() ? parseMoment(promiseDue.value) : null;
        if (promiseDue.value.trim() && !dueAt) {
          showError(error, t("Due") + ": " + t("Enter the date and time as %(pattern)s", { pattern: momentPlaceholder() }));
          promiseDue.focus();
          keep({ pending: false });
          return;
        }
        const due = dueAt ? dueAt.toISOString() : null;
        jobs.push(["promise", "/api/promises", { client_id: clientId, text: promiseText.value, due_at: due }, [promiseText]]);
      }
      if (agreementTitle.value.trim()) {
        const body = { client_id: clientId, title: agreementTitle.value };
        if (agreementAmount.value) body.amount = agreementAmount.value;
        jobs.push(["agreement", "/api/agreements", body, [agreementTitle, agreementAmount]]);
      }
      if (noteText.value.trim()) {
        jobs.push(["note", "/api/notes", { client_id: clientId, text: noteText.value }, [noteText]]);
      }
      if (!jobs.length) {
        showError(error, t("Nothing to save: write a promise, an agreement or a note."));
        return;
      }
      // the same content keeps its key (the server then answers a resend with the first
      // save); changed content is a new save with a new key
      const sent = { ...((draft && draft.sent) || {}) };
      for (const job of jobs) {
        const content = JSON.stringify(job[2]);
        const before = sent[job[0]];
        sent[job[0]] = { key: before && before.content === content ? before.key : drafts ? drafts.newKey() : null,
          content };
      }
      keep({ sent, pending: true }); // on disk before anything leaves
      save.disabled = true;
      const saved = [];
      try {
        for (const [kind, path, body, inputs] of jobs) {
          const key = sent[kind].key;
          await api("POST", path, { ...body, ...link }, key ? { "Idempotency-Key": key } : undefined);
          saved.push(kind);
          inputs.forEach((input) => { input.value = ""; });
          delete sent[kind];
          keep({ sent });
        }
        if (drafts) drafts.clear(clientId, draftCall);
        draft = null;
        done.textContent = t("Saved.");
        done.hidden = false;
        if (onSaved) onSaved(saved);
      } catch (err) {
        if (err.unreachable) {
          // kept, Save still pressed: sent again here in a while, or at once by the page on
          // the instance this one moves to
          showError(error, t("Not saved yet: the server is not answering. What you typed is kept and will be sent again."));
          clearTimeout(retry);
          retry = setTimeout(() => { if (form.isConnected && draft && draft.pending) submit(); }, RETRY_MS);
        } else {
          keep({ pending: false }); // refused: the manager corrects it and saves again
          showError(error, err);
        }
      } finally {
        save.disabled = false;
      }
    }

    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      submit();
    });
    if (drafts) {
      drafts.forms.add({ hasText: () => form.isConnected && hasText() });
      if (draft && draft.pending) setTimeout(submit, 0); // Save was pressed before the reload or the move
    }
    form.hasUnsent = hasText;
    form.discardDraft = () => { if (drafts) drafts.clear(clientId, draftCall); draft = null; };
    return form;
  }

  cards.recordForm = recordForm;
})();
