/* callpop: helpers shared by the desk, the client page and the promises page.
 *
 * Everything that came from a caller or a user is put in the page with textContent
 * (el() below never parses HTML), and every write to the API carries the session's CSRF
 * token in the X-CSRF-Token header.
 */
"use strict";

const callpop = (() => {
  const config = JSON.parse(document.getElementById("callpop-config").textContent);
  const messages = config.messages || {};

  /** The UI text for an English message id, with %(name)s parameters filled in. */
  function t(id, params) {
    let text = Object.prototype.hasOwnProperty.call(messages, id) ? messages[id] : id;
    if (params) {
      text = text.replace(/%\((\w+)\)s/g, (_, key) => (key in params ? String(params[key]) : ""));
    }
    return text;
  }

  /** A DOM element; strings among the children become text nodes, never markup. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  class ApiError extends Error {
    constructor(status, body) {
      // "message" is for people (their language, the field's label); "error" for programs
      super((body && (body.message || body.error)) || `HTTP ${status}`);
      this.status = status;
      this.field = body && body.field;
    }
  }

  /** JSON to and from /api; a 4xx becomes an ApiError naming the field. A request that
   * got no answer at all (the instance is gone, the network down) is an ApiError with
   * ``unreachable`` set, and failover.js is told: it may move the page to another
   * instance. *extra* headers: an Idempotency-Key, say. */
  async function api(method, path, body, extra) {
    const headers = { Accept: "application/json", ...(extra || {}) };
    if (method !== "GET") headers["X-CSRF-Token"] = config.csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(path, {
        method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_) {
      // a write the manager asked for failed: moving now interrupts nothing
      document.dispatchEvent(new CustomEvent("callpop:unreachable", { detail: { urgent: method !== "GET" } }));
      const error = new ApiError(0, { message: t("The server is not answering.") });
      error.unreachable = true;
      throw error;
    }
    if (resp.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
      throw new ApiError(401, { error: t("Your session has ended: log in again.") });
    }
    const data = resp.status === 204 ? null : await resp.json().catch(() => null);
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  const dateFormat = new Intl.DateTimeFormat(config.lang, { dateStyle: "medium", timeStyle: "short" });
  const dayFormat = new Intl.DateTimeFormat(config.lang, { dateStyle: "medium" });

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : dateFormat.format(d);
  }

  function day(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : dayFormat.format(d);
  }

  /** Talk time as m:ss (h:mm:ss from an hour), as the KPI pages write it. */
  function duration(seconds) {
    const total = Math.max(0, Math.round(Number(seconds) || 0));
    const pad = (n) => String(n).padStart(2, "0");
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    return h ? `${h}:${pad(m)}:${pad(total % 60)}` : `${m}:${pad(total % 60)}`;
  }

  function money(amount, currency) {
    if (amount === null || amount === undefined) return "";
    const n = Number(amount);
    if (Number.isNaN(n)) return `${amount} ${currency || ""}`.trim();
    try {
      return new Intl.NumberFormat(config.lang, { style: "currency", currency: currency || "RUB" }).format(n);
    } catch (_) {
      return `${amount} ${currency || ""}`.trim();
    }
  }

  // Date fields are text fields in the user's format ("05.03.2026 15:00" in Russian), not the
  // browser's date picker: Chromium draws that in the browser's locale, not the page's.
  // ISO ("2026-03-05T15:00") is accepted too.
  const dateInput = config.dateInput || { pattern: "yyyy-mm-dd", placeholder: "yyyy-mm-dd" };
  const pad2 = (n) => String(n).padStart(2, "0");

  /** What a date-and-time field shows for *date*: "05.03.2026 15:00". */
  function momentInput(date) {
    const day = dateInput.pattern.replace("yyyy", String(date.getFullYear()))
      .replace("mm", pad2(date.getMonth() + 1)).replace("dd", pad2(date.getDate()));
    return `${day} ${pad2(date.getHours())}:${pad2(date.getMinutes())}`;
  }

  function momentPlaceholder() {
    return `${dateInput.placeholder} ${t("hh:mm")}`;
  }

  /** The moment typed in a date-and-time field, or null when it is not one. A date without
   * a time is 10:00, as the form's own suggestions are. */
  function parseMoment(text) {
    const value = String(text || "").trim();
    const order = [];
    const local = dateInput.pattern.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")
      .replace(/yyyy|mm|dd/g, (token) => { order.push(token); return token === "yyyy" ? "(\\d{4})" : "(\\d{1,2})"; });
    const time = "(?:[T ]\\s*(\\d{1,2})[:.](\\d{2}))?";
    let parts = null;
    let match = new RegExp(`^${local}\\s*${time}$`).exec(value);
    if (match) {
      parts = {};
      order.forEach((token, i) => { parts[token] = Number(match[i + 1]); });
      parts.h = match[order.length + 1];
      parts.min = match[order.length + 2];
    } else if ((match = /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]\s*(\d{1,2}):(\d{2}))?$/.exec(value))) {
      parts = { yyyy: Number(match[1]), mm: Number(match[2]), dd: Number(match[3]), h: match[4], min: match[5] };
    }
    if (!parts) return null;
    const h = parts.h === undefined ? 10 : Number(parts.h);
    const min = parts.min === undefined ? 0 : Number(parts.min);
    const date = new Date(parts.yyyy, parts.mm - 1, parts.dd, h, min);
    const same = date.getFullYear() === parts.yyyy && date.getMonth() === parts.mm - 1 && date.getDate() === parts.dd
      && date.getHours() === h && date.getMinutes() === min;
    return same ? date : null; // 31.02 or 25:00 are not moments
  }

  /** A date-and-time text field in the user's format, *date* filled in. */
  function momentField(attrs, date) {
    return el("input", { type: "text", autocomplete: "off", value: date ? momentInput(date) : "",
      placeholder: momentPlaceholder(), title: momentPlaceholder(), maxlength: 20, ...attrs });
  }

  function showError(target, error) {
    target.textContent = error instanceof Error ? error.message : String(error);
    target.hidden = false;
  }

  return { config, t, el, api, ApiError, when, day, duration, money, momentInput, momentField, momentPlaceholder,
    parseMoment, showError };
})();
