/* callpop: how the desk makes a call noticed — the ring (two tones every 3 s while a call
 * rings for this manager, on by default for managers and off for supervisors, remembered
 * per browser), the tab's title flashing the caller, the screen readers' line, and a
 * desktop notification when the tab is hidden (permission asked once, on a click).
 * The desk (desk.js) owns the calls; this only reads them.
 */
"use strict";

/** *calls*: the desk's Map of call entries; *title(card)*: the caller as the desk names
 * them. Returns { alerts, announce, notify }. */
function callpopRinger({ calls, supervisor, title }) {
  const { t } = callpop;
  const announcer = document.getElementById("announce");
  const ringToggle = document.getElementById("ring-sound");
  const RING_KEY = "callpop.ring";
  let audio = null;
  let ringTimer = null;
  let flashTimer = null;
  const baseTitle = document.title;

  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      const now = audio.currentTime;
      for (const [offset, freq] of [[0, 880], [0.25, 660]]) {
        const osc = audio.createOscillator();
        const gain = audio.createGain();
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, now + offset);
        gain.gain.exponentialRampToValueAtTime(0.2, now + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.22);
        osc.connect(gain).connect(audio.destination);
        osc.start(now + offset);
        osc.stop(now + offset + 0.25);
      }
      window.callpopRings = (window.callpopRings || 0) + 1;
    } catch (_) { /* no audio device: the title and the card still show the call */ }
  }

  /** Start or stop the ring and the title flash from what is ringing for me now. */
  function alerts() {
    const ringing = [...calls.values()].filter((e) => e.state === "ringing" && !e.watching
      && e.direction !== "outbound");
    if (ringing.length && ringToggle && ringToggle.checked) {
      if (!ringTimer) { beep(); ringTimer = setInterval(beep, 3000); }
    } else if (ringTimer) {
      clearInterval(ringTimer);
      ringTimer = null;
    }
    if (ringing.length) {
      const flashed = `☎ ${title(ringing[0].card)}`;
      if (!flashTimer) {
        document.title = flashed;
        flashTimer = setInterval(() => {
          document.title = document.title === baseTitle ? flashed : baseTitle;
        }, 1000);
      }
    } else if (flashTimer) {
      clearInterval(flashTimer);
      flashTimer = null;
      document.title = baseTitle;
    }
  }

  function announce(entry) {
    if (!announcer) return;
    const card = entry.card;
    const who = title(card);
    const extra = card.client ? ` — ${card.client.status === "regular" ? t("regular") : t("new")}` : "";
    announcer.textContent = t("Incoming call: %(who)s", { who }) + extra;
  }

  function notify(entry) {
    if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
    const n = new Notification(t("Incoming call"), { body: title(entry.card), tag: entry.call });
    n.onclick = () => {
      window.focus();
      entry.node.scrollIntoView({ block: "center" });
      entry.node.classList.add("flash");
      n.close();
    };
  }

  if (ringToggle) {
    const saved = window.localStorage.getItem(RING_KEY);
    ringToggle.checked = saved === null ? !supervisor : saved === "on";
    ringToggle.addEventListener("change", () => {
      window.localStorage.setItem(RING_KEY, ringToggle.checked ? "on" : "off");
      alerts();
    });
  }

  const notifyButton = document.getElementById("enable-notifications");
  if (notifyButton) {
    if (!("Notification" in window) || Notification.permission !== "default") notifyButton.hidden = true;
    notifyButton.addEventListener("click", async () => {
      await Notification.requestPermission();
      notifyButton.hidden = true;
    });
  }

  return { alerts, announce, notify };
}
