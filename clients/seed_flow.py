#!/usr/bin/env python3
"""The seed's two-factor flow, driven by Python's standard library alone,
the way a client written for the NestJS original calls the API (only the
/api prefix is new).

urllib sends `Content-Length: 0` for a POST without a body: that is what
/2fa/generate, /authentication/refresh and /authentication/log-out get here,
exactly where the seed sends no body. TOTP codes come from RFC 6238 written
out below (hmac + hashlib), not from the server's code.

Usage: seed_flow.py http://127.0.0.1:PORT
Exits non-zero, naming the step, on any unexpected answer.
"""

import base64
import hashlib
import hmac
import http.cookiejar
import json
import secrets
import struct
import sys
import time
import urllib.error
import urllib.request

STEP = 30
PASSWORD = "correct horse battery staple"


def totp(secret_b32: str, step: int) -> str:
    """RFC 6238 (HOTP of the time step, RFC 4226): SHA-1, 6 digits."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def check_totp() -> None:
    """RFC 6238 appendix B, SHA-1, truncated to 6 digits."""
    secret = base64.b32encode(b"12345678901234567890").decode()
    for t, expected in [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")]:
        got = totp(secret, t // STEP)
        if got != expected:
            raise SystemExit(f"RFC 6238 test vector at T={t}: got {got}, expected {expected}")


class Client:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def call(self, step: str, method: str, path: str, body=None, expect: int = 200):
        """One request; `body=None` sends no body at all (for a POST urllib
        then sends Content-Length: 0 and no Content-Type)."""
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=30) as res:
                status, text = res.status, res.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if status != expect:
            raise SystemExit(f"python: {step}: {method} {path} answered {status}, expected {expect}: {text}")
        answer = json.loads(text) if text else None
        print(f"python: {step}: {method} {path} -> {status}")
        return answer

    def cookie(self, name: str):
        return next((c.value for c in self.jar if c.name == name), None)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    check_totp()
    c = Client(sys.argv[1])
    email = f"py-{secrets.token_hex(4)}@example.com"

    user = c.call("register", "POST", "/api/authentication/register",
                  {"email": email, "name": "Python Client", "password": PASSWORD}, expect=201)
    assert user["email"] == email and user["isTwoFactorAuthenticationEnabled"] is False, user

    r = c.call("log in", "POST", "/api/authentication/log-in", {"email": email, "password": PASSWORD})
    assert r["twoFactorRequired"] is False, r
    assert c.cookie("access") and c.cookie("refresh"), "log-in set the session cookies"

    # No body, as the seed sends it: urllib makes it Content-Length: 0.
    g = c.call("generate (no body)", "POST", "/api/2fa/generate")
    secret = g["secret"]
    assert g["otpauthUrl"].startswith("otpauth://totp/") and f"secret={secret}" in g["otpauthUrl"], g

    # The code of the current time step turns 2FA on; that step is now spent.
    enrolled_at = int(time.time()) // STEP
    on = c.call("turn on", "POST", "/api/2fa/turn-on", {"twoFactorAuthenticationCode": totp(secret, enrolled_at)})
    assert on["user"]["isTwoFactorAuthenticationEnabled"] is True, on
    recovery_codes = on["recoveryCodes"]
    assert len(recovery_codes) == 10, on

    c.call("log out (no body)", "POST", "/api/authentication/log-out")
    assert c.cookie("access") is None, "log-out cleared the access cookie"

    r = c.call("log in again", "POST", "/api/authentication/log-in", {"email": email, "password": PASSWORD})
    assert r["twoFactorRequired"] is True, r
    c.call("current user before the code", "GET", "/api/authentication", expect=401)

    # Codes are single use per time step: the next step's code (accepted
    # within the server's one step of clock skew) is fresh, with no waiting.
    code = totp(secret, enrolled_at + 1)
    if code == totp(secret, enrolled_at):
        raise SystemExit("python: the next step's code equals this step's (one in a million): run again")
    me = c.call("authenticate", "POST", "/api/2fa/authenticate", {"twoFactorAuthenticationCode": code})
    assert me["email"] == email and me["isTwoFactorAuthenticationEnabled"] is True, me

    me = c.call("current user", "GET", "/api/authentication")
    assert me["email"] == email and "secret" not in json.dumps(me).lower(), me

    before = c.cookie("refresh")
    c.call("refresh (no body)", "POST", "/api/authentication/refresh")
    assert c.cookie("refresh") and c.cookie("refresh") != before, "refresh rotated the refresh token"
    c.call("current user after refresh", "GET", "/api/authentication")

    c.call("log out (no body)", "POST", "/api/authentication/log-out")
    c.call("current user after log-out", "GET", "/api/authentication", expect=401)

    # The other way past the second step: a recovery code, then log out
    # everywhere, again without a body.
    c.call("log in for a recovery code", "POST", "/api/authentication/log-in", {"email": email, "password": PASSWORD})
    c.call("authenticate with a recovery code", "POST", "/api/2fa/authenticate", {"recoveryCode": recovery_codes[0]})
    c.call("log out everywhere (no body)", "POST", "/api/authentication/log-out-everywhere")
    c.call("current user after log-out-everywhere", "GET", "/api/authentication", expect=401)

    # An endpoint with fields answers a field error for an empty body, and
    # a body that is not JSON a clear 400.
    err = c.call("log in with no body", "POST", "/api/authentication/log-in", expect=400)
    assert "email" in err.get("fields", {}), err
    req = urllib.request.Request(c.base + "/api/authentication/log-in", data=b"{not json", method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        c.opener.open(req, timeout=30)
        raise SystemExit("python: malformed JSON was accepted")
    except urllib.error.HTTPError as e:
        if e.code != 400:
            raise SystemExit(f"python: malformed JSON answered {e.code}, expected 400")
    print("python: the seed flow passed")


if __name__ == "__main__":
    main()
