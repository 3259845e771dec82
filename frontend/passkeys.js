// Passkeys in the browser. The pages draw the buttons (data-passkey=…)
// and a status line; this module makes the WebAuthn calls the buttons need
// and talks to /api/webauthn/… (docs/API.md). It is loaded from this
// origin on every page (the Content-Security-Policy allows no inline
// script) and works whether or not the WebAssembly has loaded yet.
//
// Without JavaScript, in a browser without WebAuthn JSON support, or on
// another origin than the portal's, the buttons stay hidden and the pages
// say how to log in instead (CSS keys on the `passkeys` class set here).

// The portal's own origin, when passkeys are on (the server names it):
// anywhere else (an IP address, another name) the browser would refuse.
const origin = document.querySelector('meta[name="passkey-origin"]')?.getAttribute('content');

const supported =
  origin === window.location.origin &&
  typeof window.PublicKeyCredential === 'function' &&
  typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function' &&
  typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function';

if (supported) {
  document.documentElement.classList.add('passkeys');
}

/// POSTs JSON to the API; the parsed answer, or an Error with its message.
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

/// What the browser's WebAuthn errors mean to a person.
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

/// Shows the recovery codes the first passkey came with, once, like the
/// app's enrolment does; "I have saved them" reloads the page.
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

/// Tells the hydrated page that a result waits for it in a data attribute;
/// true if the page took it (it cancels the event).
function handOver(name) {
  return !window.dispatchEvent(new Event(name, { cancelable: true }));
}

/// A passkey sign-in from an assertion for `start`: checked, then the page
/// the sign-in panel names.
async function finishSignIn(start, credential, status, next) {
  say(status, 'Checking…');
  await call('/api/webauthn/sign-in/finish', { ceremony: start.ceremony, credential });
  say(status, 'Signed in. Opening…', 'ok');
  window.location.assign(next);
}

// Passkeys offered in the email field's autofill (an input whose
// autocomplete names `webauthn`): while such a field is on the page, one
// quiet request waits for the person to pick a passkey from the list the
// browser shows under it. A browser runs one WebAuthn request at a time,
// so a button's own request cancels the quiet one first.
let quiet = null;
// Whether this browser lists passkeys in autofill, asked once.
let listsPasskeys = null;
// After a failure the next quiet request waits for the field's focus:
// never a loop of requests to a server that refuses them.
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
    // Cancelled for a button's request, or the page moved on: not news.
    if (!controller.signal.aborted && error?.name !== 'AbortError') {
      say(status, explain(error), 'error');
      if (Number.isInteger(error?.retryAfter)) {
        // Too many starts from this address just now: offered again once
        // the server's wait is over (the field may be gone by then).
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
      // "Don't ask again on this browser", as ticked on the page.
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
        // The hydrated page shows the codes with the app's widget (copy,
        // download) and takes in that protection is on; before it runs,
        // they are drawn here.
        codes.dataset.codes = JSON.stringify(done.recoveryCodes);
        if (handOver('passkey-codes')) return;
        delete codes.dataset.codes;
        // Until the codes are saved, nothing else to do here.
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
      // Proof for a new phone: the passkey's answer goes with the request
      // for the new key, which the page then shows (see `handOver`).
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
      // A second factor shown again for an app behind the gate: then on
      // to it (a full page load; the server checks the way back).
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
    // The log-in is no longer recent: the password field was hidden.
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

// The field may be drawn now or later (the log-in page is also reached
// without a page load, and redrawn in place): offer passkeys whenever it
// is on the page, and stop waiting once it is gone.
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
