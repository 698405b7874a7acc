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

  /** JSON to and from /api; a 4xx becomes an ApiError naming the field. */
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = config.csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
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

  /** The value of a datetime-local input as the API expects it (local time, no offset). */
  function localInput(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  function showError(target, error) {
    target.textContent = error instanceof Error ? error.message : String(error);
    target.hidden = false;
  }

  return { config, t, el, api, ApiError, when, day, duration, money, localInput, showError };
})();
