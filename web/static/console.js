// Airlock console: small progressive enhancements. Every page works as
// plain HTML forms; this file adds the live countdowns, the WebAuthn and
// push ceremonies, the push device prompt and the SSH session player.
"use strict";
(function () {
  const $ = (s, el) => (el || document).querySelector(s);
  const $$ = (s, el) => Array.from((el || document).querySelectorAll(s));
  const b64u = {
    dec: (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), c => c.charCodeAt(0)).buffer,
    enc: (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
  };
  async function post(path, body) {
    const r = await fetch(path, {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});
    let j = {};
    try { j = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
    return j;
  }

  // ---- countdowns: data-left is seconds left by the server's clock ----
  function fmt(s) {
    const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + x + "s";
  }
  const counters = $$(".countdown").map(el => ({el, end: Date.now() + 1000 * parseInt(el.dataset.left || "0", 10)}));
  function tick() {
    for (const c of counters) {
      const left = Math.max(0, Math.round((c.end - Date.now()) / 1000));
      c.el.textContent = left > 0 ? fmt(left) : (c.el.dataset.expired || "expired");
      c.el.dataset.remaining = String(left);
    }
  }
  if (counters.length) { tick(); setInterval(tick, 1000); }

  // ---- WebAuthn ----
  function creationOptions(pk) {
    pk.challenge = b64u.dec(pk.challenge);
    pk.user.id = b64u.dec(pk.user.id);
    (pk.excludeCredentials || []).forEach(c => c.id = b64u.dec(c.id));
    return pk;
  }
  function requestOptions(pk) {
    pk.challenge = b64u.dec(pk.challenge);
    (pk.allowCredentials || []).forEach(c => c.id = b64u.dec(c.id));
    return pk;
  }
  function assertionJSON(cred) {
    return {id: cred.id, rawId: b64u.enc(cred.rawId), type: cred.type,
      response: {clientDataJSON: b64u.enc(cred.response.clientDataJSON), authenticatorData: b64u.enc(cred.response.authenticatorData),
        signature: b64u.enc(cred.response.signature), userHandle: cred.response.userHandle ? b64u.enc(cred.response.userHandle) : ""}};
  }
  async function assert(beginPath, finishPath, next) {
    const begin = await post(beginPath);
    const cred = await navigator.credentials.get({publicKey: requestOptions(begin.options.publicKey)});
    return post(finishPath, {ceremony: begin.ceremony, response: assertionJSON(cred), next: next});
  }

  const reg = $("#webauthn-register");
  if (reg) reg.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = $("#webauthn-status");
    try {
      const begin = await post("/api/v1/mfa/webauthn/register/begin", {name: $("#webauthn-name").value});
      const cred = await navigator.credentials.create({publicKey: creationOptions(begin.options.publicKey)});
      await post("/api/v1/mfa/webauthn/register/finish", {ceremony: begin.ceremony, response: {id: cred.id, rawId: b64u.enc(cred.rawId), type: cred.type,
        response: {clientDataJSON: b64u.enc(cred.response.clientDataJSON), attestationObject: b64u.enc(cred.response.attestationObject),
          transports: cred.response.getTransports ? cred.response.getTransports() : []}}});
      location.href = "/factors?done=passkey";
    } catch (e) { status.textContent = "Failed: " + e.message; }
  });

  const factor = $("#factor");
  const factorStatus = $("#factor-status");
  const wa = $("#signin-webauthn");
  if (wa) wa.addEventListener("click", async () => {
    try {
      const res = await assert("/signin/webauthn/begin", "/signin/webauthn/finish", factor.dataset.next);
      location.href = res.redirect || "/";
    } catch (e) { factorStatus.textContent = "Failed: " + e.message; }
  });

  // ---- push: the requesting screen shows one number and waits ----
  async function pushFlow(beginPath, pollBase, next, numEl, statusEl) {
    try {
      const ch = await post(beginPath);
      numEl.textContent = "Tap " + ch.number + " on your device";
      numEl.dataset.number = ch.number;
      const poll = async () => {
        let res;
        try { res = await post(pollBase + encodeURIComponent(ch.id) + "?next=" + encodeURIComponent(next || "/")); }
        catch (e) { statusEl.textContent = "Failed: " + e.message; return; }
        if (res.state === "approved") { location.href = res.redirect || "/"; return; }
        if (res.state === "pending") { setTimeout(poll, 1000); return; }
        numEl.textContent = "";
        statusEl.textContent = res.state === "denied" ? "Push refused: the wrong number was chosen." : "Push timed out.";
      };
      setTimeout(poll, 1000);
    } catch (e) { statusEl.textContent = "Failed: " + e.message; }
  }
  const sp = $("#signin-push");
  if (sp) sp.addEventListener("click", () => pushFlow("/signin/push/begin", "/signin/push/", factor.dataset.next, $("#push-number"), factorStatus));

  // ---- step-up from any page ----
  $$(".js-stepup-webauthn").forEach(b => b.addEventListener("click", async () => {
    const out = $(".push-number", b.parentElement);
    try {
      const res = await assert("/mfa/webauthn/begin", "/mfa/webauthn/finish", b.dataset.next);
      location.href = res.redirect || b.dataset.next;
    } catch (e) { out.textContent = "Failed: " + e.message; }
  }));
  $$(".js-stepup-push").forEach(b => b.addEventListener("click", () => {
    const out = $(".push-number", b.parentElement);
    pushFlow("/mfa/push/begin", "/mfa/push/", b.dataset.next, out, out);
  }));

  // ---- this browser as a push device: answer challenges live ----
  if (document.body.dataset.pushDevice) {
    const box = $("#push-prompt"), choices = $("#push-choices"), result = $("#push-result"), what = $("#push-what"), detail = $("#push-detail");
    const es = new EventSource("/push/events");
    es.addEventListener("push", (ev) => {
      const ch = JSON.parse(ev.data);
      box.hidden = false;
      box.dataset.id = ch.id;
      what.textContent = (ch.purpose === "login" ? "Sign-in" : ch.purpose === "statement" ? "A statement you sent" : "Verification") +
        " as " + ch.user + " from " + ch.source + ".";
      detail.textContent = ch.detail || "";
      detail.hidden = !ch.detail;
      result.textContent = "";
      choices.textContent = "";
      for (const n of ch.choices) {
        const btn = document.createElement("button");
        btn.type = "button";
        btn.className = "choice";
        btn.textContent = String(n);
        btn.dataset.number = String(n);
        btn.addEventListener("click", async () => {
          $$("button", choices).forEach(x => x.disabled = true);
          try { await post("/push/" + encodeURIComponent(ch.id) + "/answer", {number: n}); result.textContent = "Approved."; }
          catch (e) { result.textContent = "Refused: " + e.message; }
        });
        choices.appendChild(btn);
      }
    });
  }

  // ---- session replay (SSH, kubectl exec -it): a minimal asciicast v2 player ----
  const player = $("#player");
  if (player) {
    const term = $("#term"), status = $("#player-status");
    let frames = null, timer = null;
    const strip = (s) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\x1b\][^\x07]*\x07/g, "").replace(/\r\n/g, "\n").replace(/\r/g, "");
    const part = $("#part");
    if (part) part.addEventListener("change", () => { player.dataset.src = part.value; frames = null; clearTimeout(timer); term.textContent = ""; status.textContent = ""; });
    async function load() {
      const r = await fetch(player.dataset.src, {credentials: "same-origin"});
      if (!r.ok) throw new Error("recording unavailable (" + r.status + ")");
      const lines = (await r.text()).split("\n").filter(Boolean);
      JSON.parse(lines.shift()); // header
      return lines.map(l => JSON.parse(l)).filter(e => e[1] === "o");
    }
    $("#play").addEventListener("click", async () => {
      try {
        if (!frames) frames = await load();
        clearTimeout(timer);
        term.textContent = "";
        const speed = parseFloat($("#speed").value) || 1;
        let i = 0;
        const step = () => {
          if (i >= frames.length) { status.textContent = "done"; return; }
          const [t, , data] = frames[i];
          term.textContent += strip(data);
          term.scrollTop = term.scrollHeight;
          i++;
          status.textContent = t.toFixed(1) + " s";
          const next = i < frames.length ? Math.min(2, (frames[i][0] - t) / speed) : 0;
          timer = setTimeout(step, next * 1000);
        };
        step();
      } catch (e) { status.textContent = "Failed: " + e.message; }
    });
  }
})();
