// Airlock WebAuthn ceremonies: the server sends PublicKeyCredential options
// as JSON (base64url binary fields); the browser API needs ArrayBuffers.
"use strict";
const b64u = {
  dec: (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), c => c.charCodeAt(0)).buffer,
  enc: (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
};
async function api(path, token, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token}, body: JSON.stringify(body || {})});
  const j = await r.json();
  if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
  return j;
}
const m = location.hash.match(/token=([^&]+)/);
if (m) { document.getElementById("token").value = decodeURIComponent(m[1]); history.replaceState(null, "", location.pathname); }
document.getElementById("register").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const status = document.getElementById("status");
  const token = document.getElementById("token").value.trim();
  try {
    const begin = await api("/api/v1/mfa/webauthn/register/begin", token, {name: document.getElementById("name").value});
    const pk = begin.options.publicKey;
    pk.challenge = b64u.dec(pk.challenge);
    pk.user.id = b64u.dec(pk.user.id);
    (pk.excludeCredentials || []).forEach(c => c.id = b64u.dec(c.id));
    const cred = await navigator.credentials.create({publicKey: pk});
    const resp = {id: cred.id, rawId: b64u.enc(cred.rawId), type: cred.type,
      response: {clientDataJSON: b64u.enc(cred.response.clientDataJSON), attestationObject: b64u.enc(cred.response.attestationObject),
                 transports: cred.response.getTransports ? cred.response.getTransports() : []}};
    await api("/api/v1/mfa/webauthn/register/finish", token, {ceremony: begin.ceremony, response: resp});
    status.textContent = "Key registered. You can close this page.";
  } catch (e) {
    status.textContent = "Failed: " + e.message;
  }
});
