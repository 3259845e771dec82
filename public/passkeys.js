// Made by scripts/ship-js from frontend/passkeys.js (read and edit that).
const origin = document.querySelector('meta[name="passkey-origin"]')?.getAttribute('content');
const supported =
origin === window.location.origin &&
typeof window.PublicKeyCredential === 'function' &&
typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function' &&
typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function';
if (supported) {
document.documentElement.classList.add('passkeys');
}
async function call(path, body) {
let res;
try {
res = await fetch(path, {
method: 'POST',
headers: { 'content-type': 'application/json' },
body: JSON.stringify(body ?? {}),
credentials: 'same-origin',
});
} catch {
throw new Error('The server could not be reached. Check your connection and try again.');
}
let data = null;
try {
data = await res.json();
} catch {
data = null;
}
if (!res.ok) {
const error = new Error(data?.message ?? `The server answered ${res.status}.`);
error.fields = data?.fields ?? {};
error.retryAfter = data?.retryAfter;
throw error;
}
return data;
}
function explain(error) {
switch (error?.name) {
case 'NotAllowedError':
return 'The passkey request was cancelled or timed out. Try again when you are ready.';
case 'InvalidStateError':
return 'This authenticator already holds a passkey for your account.';
case 'SecurityError':
return 'Your browser refused passkeys for this address. Open the site by its usual name (not an IP address).';
case 'NotSupportedError':
return 'This authenticator cannot make a passkey of the kind this site needs.';
default:
return error?.message || 'Something went wrong. Try again.';
}
}
function say(status, text, kind) {
if (!status) return;
status.textContent = text;
status.className = kind === 'error' ? 'alert alert-error' : kind === 'ok' ? 'alert alert-ok' : 'muted';
}
async function getAssertion(options) {
const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey);
const credential = await navigator.credentials.get({ publicKey });
return credential.toJSON();
}
async function createCredential(options) {
const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey);
const credential = await navigator.credentials.create({ publicKey });
return credential.toJSON();
}
function showCodes(place, codes) {
place.replaceChildren();
const heading = document.createElement('h3');
heading.id = 'passkey-codes-heading';
heading.tabIndex = -1;
heading.textContent = 'Save your recovery codes';
const text = document.createElement('p');
text.textContent =
'Two-factor authentication is now on. If you lose your passkey, each of these codes lets you log in once. ' +
'They are shown only now: copy or download them and keep them somewhere safe.';
const list = document.createElement('ol');
list.className = 'codes';
for (const code of codes) {
const item = document.createElement('li');
const c = document.createElement('code');
c.textContent = code;
item.append(c);
list.append(item);
}
const actions = document.createElement('div');
actions.className = 'actions';
const download = document.createElement('a');
download.className = 'btn';
download.download = 'twofactor-recovery-codes.txt';
download.href =
'data:text/plain;charset=utf-8,' +
encodeURIComponent(
'Two-Factor Login recovery codes\nEach code works once. Keep them somewhere safe.\n\n' + codes.join('\n') + '\n',
);
download.textContent = 'Download .txt';
const done = document.createElement('button');
done.type = 'button';
done.className = 'btn btn-primary';
done.textContent = 'I have saved them';
done.addEventListener('click', () => window.location.reload());
actions.append(download, done);
place.append(heading, text, list, actions);
place.hidden = false;
heading.focus();
}
function handOver(name) {
return !window.dispatchEvent(new Event(name, { cancelable: true }));
}
async function finishSignIn(start, credential, status, next) {
say(status, 'Checking…');
await call('/api/webauthn/sign-in/finish', { ceremony: start.ceremony, credential });
say(status, 'Signed in. Opening…', 'ok');
window.location.assign(next);
}
let quiet = null;
let listsPasskeys = null;
let quietFailed = false;
function cancelQuiet() {
if (quiet) {
quiet.abort();
quiet = null;
}
}
async function offerInAutofill() {
if (!supported || quiet || quietFailed || !document.querySelector('input[autocomplete~="webauthn"]')) return;
if (typeof PublicKeyCredential.isConditionalMediationAvailable !== 'function') return;
const controller = new AbortController();
quiet = controller;
const panel = document.querySelector('[data-testid="passkey-sign-in"]');
const status = panel?.querySelector('[data-passkey-status]');
try {
listsPasskeys ??= PublicKeyCredential.isConditionalMediationAvailable().catch(() => false);
if (!(await listsPasskeys)) return;
const start = await call('/api/webauthn/sign-in/start');
if (controller.signal.aborted) return;
const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(start.options.publicKey);
const credential = await navigator.credentials.get({ publicKey, mediation: 'conditional', signal: controller.signal });
const next = panel?.querySelector('[data-passkey="sign-in"]')?.dataset.next || '/';
await finishSignIn(start, credential.toJSON(), status, next);
} catch (error) {
if (!controller.signal.aborted && error?.name !== 'AbortError') {
say(status, explain(error), 'error');
if (Number.isInteger(error?.retryAfter)) {
setTimeout(() => {
say(status, '');
offerInAutofill();
}, (error.retryAfter + 1) * 1000);
} else {
quietFailed = true;
}
}
} finally {
if (quiet === controller) quiet = null;
}
}
async function run(button) {
const panel = button.closest('[data-passkey-panel]') ?? document;
const status = panel.querySelector('[data-passkey-status]');
const next = button.dataset.next || '/';
cancelQuiet();
switch (button.dataset.passkey) {
case 'sign-in': {
say(status, 'Waiting for your passkey…');
const start = await call('/api/webauthn/sign-in/start');
const credential = await getAssertion(start.options);
await finishSignIn(start, credential, status, next);
return;
}
case 'second-factor': {
say(status, 'Waiting for your passkey…');
const start = await call('/api/webauthn/authenticate/start');
const credential = await getAssertion(start.options);
say(status, 'Checking…');
const remember = document.getElementById('remember')?.checked === true;
await call('/api/webauthn/authenticate/finish', { ceremony: start.ceremony, credential, remember });
say(status, 'Verified. Opening…', 'ok');
window.location.assign(next);
return;
}
case 'register': {
const nameField = document.getElementById(button.dataset.nameField ?? '');
const passwordField = document.getElementById(button.dataset.passwordField ?? '');
const name = nameField?.value ?? '';
const body = { name };
if (passwordField?.value) body.password = passwordField.value;
say(status, 'Waiting for your authenticator…');
const start = await call('/api/webauthn/register/start', body);
if (passwordField) passwordField.value = '';
const credential = await createCredential(start.options);
say(status, 'Saving…');
const done = await call('/api/webauthn/register/finish', { ceremony: start.ceremony, credential });
const codes = panel.querySelector('[data-passkey-codes]');
if (nameField) nameField.value = '';
if (done.recoveryCodes && codes) {
say(status, `Added “${done.passkey.name}”.`, 'ok');
codes.dataset.codes = JSON.stringify(done.recoveryCodes);
if (handOver('passkey-codes')) return;
delete codes.dataset.codes;
for (const field of [nameField, passwordField]) field?.closest('.field')?.setAttribute('hidden', '');
button.hidden = true;
showCodes(codes, done.recoveryCodes);
} else if (handOver('passkey-added')) {
say(status, `Added “${done.passkey.name}”.`, 'ok');
} else {
say(status, `Added “${done.passkey.name}”. Updating the list…`, 'ok');
window.location.reload();
}
return;
}
case 'proof': {
say(status, 'Waiting for your passkey…');
const start = await call('/api/webauthn/proof/start');
const credential = await getAssertion(start.options);
say(status, 'Checking…');
const secret = await call('/api/2fa/generate', { passkey: { ceremony: start.ceremony, credential } });
panel.dataset.secret = JSON.stringify(secret);
if (!handOver('new-phone-secret')) {
delete panel.dataset.secret;
say(status, 'Reload the page and try again.', 'error');
return;
}
say(status, '');
return;
}
case 'step-up': {
say(status, 'Waiting for your passkey…');
const start = await call('/api/webauthn/proof/start');
const credential = await getAssertion(start.options);
say(status, 'Checking…');
await call('/api/2fa/step-up', { passkey: { ceremony: start.ceremony, credential } });
say(status, 'Thank you. Opening the app…', 'ok');
window.location.assign(button.dataset.next || '/security');
return;
}
default:
return;
}
}
document.addEventListener('click', async (event) => {
const button = event.target instanceof Element ? event.target.closest('button[data-passkey]') : null;
if (!button || !supported) return;
event.preventDefault();
if (button.getAttribute('aria-busy') === 'true') return;
button.setAttribute('aria-busy', 'true');
button.disabled = true;
try {
await run(button);
} catch (error) {
const panel = button.closest('[data-passkey-panel]') ?? document;
say(panel.querySelector('[data-passkey-status]'), explain(error), 'error');
if (error?.fields?.password) {
const wrap = panel.querySelector('[data-password-wrap]');
if (wrap?.hidden) {
wrap.hidden = false;
wrap.querySelector('input')?.focus();
}
}
} finally {
button.removeAttribute('aria-busy');
button.disabled = false;
}
});
if (supported) {
offerInAutofill();
new MutationObserver(() => {
if (document.querySelector('input[autocomplete~="webauthn"]')) offerInAutofill();
else cancelQuiet();
}).observe(document.documentElement, { childList: true, subtree: true });
document.addEventListener('focusin', (event) => {
if (event.target instanceof HTMLInputElement && /\bwebauthn\b/.test(event.target.getAttribute('autocomplete') ?? '')) {
quietFailed = false;
offerInAutofill();
}
});
}
