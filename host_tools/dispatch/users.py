"""Console accounts: a JSON file of users with Argon2id password hashes, a password policy,
login sessions and the login throttle.

Hashes written before Argon2 (scrypt$N$r$p$salt$hash) still verify and are replaced by an
Argon2id hash at the account's next successful login.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("viewer", "dispatcher", "supervisor")
SESSION_S = 12 * 3600
SESSIONS_PER_USER = 20
MIN_PASSWORD = 12
MAX_PASSWORD = 256  # the login form refuses longer ones without hashing them
MAX_NAME = 64
COMMON_PASSWORDS = Path(__file__).resolve().parent / "common-passwords.txt"

# RFC 9106 low-memory profile (argon2-cffi's default): 64 MiB, 3 passes, 4 lanes. The web server
# runs a bounded number of these at once (web.HASH_WORKERS), so memory stays bounded under load.
_HASHER = PasswordHasher()


def hash_password(pw: str) -> str:
    return _HASHER.hash(pw)


def _check_scrypt(pw: str, stored: str) -> bool:
    alg, n, r, p, salt, h = stored.split("$")
    if alg != "scrypt" or int(n) > 2**16 or int(r) > 8 or int(p) > 4:  # what this console ever wrote, no more
        return False
    got = hashlib.scrypt(pw.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(h) // 2,
                         maxmem=2**27)
    return hmac.compare_digest(got.hex(), h)


def check_password(pw: str, stored: str) -> bool:
    try:
        if stored.startswith("scrypt$"):
            return _check_scrypt(pw, stored)
        return _HASHER.verify(stored, pw)
    except (VerifyMismatchError, VerificationError, InvalidHashError, ValueError, TypeError):
        return False


def needs_rehash(stored: str) -> bool:
    """True for a legacy scrypt hash or an Argon2 hash weaker than today's parameters."""
    if not stored.startswith("$argon2"):
        return True
    try:
        return _HASHER.check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


_common: frozenset[str] | None = None


def _common_passwords() -> frozenset[str]:
    global _common
    if _common is None:
        lines = COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
        _common = frozenset(s.strip().lower() for s in lines if s.strip() and not s.startswith("#"))
    return _common


def password_problem(name: str, pw: str) -> str | None:
    """Why this password may not be set, or None. Length first (NIST SP 800-63B: length beats
    composition rules), then a refusal list of the passwords attackers try first, also with
    digits or symbols tacked on the end ("Password2024!")."""
    if len(pw) < MIN_PASSWORD:
        return f"password must be at least {MIN_PASSWORD} characters"
    if len(pw) > MAX_PASSWORD:
        return f"password must be at most {MAX_PASSWORD} characters"
    low = pw.lower()
    stem = low.rstrip("0123456789!@#$%^&*()-_=+.,?~ ")
    common = _common_passwords()
    if low in common or stem in common or len(set(low)) < 4:
        return "that password is one attackers try first: choose another"
    if name and stem in (name.lower(), name.lower() * 2):
        return "the password must not be the user name"
    return None


class Users:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.users: dict[str, dict] = {}
        self.lock = threading.Lock()
        if self.path.exists():
            data = json.loads(self.path.read_text())
            self.users = data.get("users", {})
        self._dummy: str | None = None

    def add(self, name: str, role: str, password: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if not name or len(name) > MAX_NAME or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"user names are up to {MAX_NAME} letters, digits, '-', '_', '.'")
        problem = password_problem(name, password)
        if problem:
            raise ValueError(problem)
        with self.lock:
            self.users[name] = {"role": role, "hash": hash_password(password)}
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"users": self.users}, indent=1))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    def verify(self, name: str, password: str) -> str | None:
        """The user's role if the password is right, else None. An unknown name costs the same
        work as a known one (no user enumeration by timing). Blocking: call it from a worker."""
        u = self.users.get(name)
        if u is None:
            if self._dummy is None:
                self._dummy = hash_password(secrets.token_urlsafe(16))
            check_password(password, self._dummy)
            return None
        stored = u["hash"]
        if not check_password(password, stored):
            return None
        if needs_rehash(stored):  # upgrade a legacy hash now that we hold the password
            new = hash_password(password)
            with self.lock:
                if self.users.get(name, {}).get("hash") == stored:
                    self.users[name] = {**self.users[name], "hash": new}
                    try:
                        self._save()
                    except OSError:  # a read-only accounts file: log in anyway, upgrade next time
                        pass
        return u["role"]


class Sessions:
    """In-memory sessions: random token (HttpOnly cookie) -> user, role, CSRF token."""

    def __init__(self) -> None:
        self.s: dict[str, dict] = {}
        self.lock = threading.Lock()

    def create(self, user: str, role: str) -> dict:
        tok = secrets.token_urlsafe(32)
        sess = {"token": tok, "user": user, "role": role, "csrf": secrets.token_urlsafe(24),
                "expires": time.time() + SESSION_S}
        with self.lock:
            mine = sorted((s["expires"], t) for t, s in self.s.items() if s["user"] == user)
            for _, t in mine[:max(0, len(mine) - SESSIONS_PER_USER + 1)]:  # bounded: oldest goes first
                del self.s[t]
            self.s[tok] = sess
        return sess

    def get(self, tok: str | None) -> dict | None:
        if not tok:
            return None
        with self.lock:
            sess = self.s.get(tok)
            if sess and sess["expires"] < time.time():
                del self.s[tok]
                return None
            return sess

    def drop(self, tok: str) -> None:
        with self.lock:
            self.s.pop(tok, None)


class _Failures:
    """Recent failures per key in a bounded LRU map: key -> [count, last failure time]."""

    def __init__(self, cap: int, forget_s: float) -> None:
        self.m: OrderedDict[str, list[float]] = OrderedDict()
        self.cap, self.forget_s = cap, forget_s

    def get(self, key: str, now: float) -> tuple[int, float]:
        e = self.m.get(key)
        if e is None:
            return 0, 0.0
        if now - e[1] > self.forget_s:
            del self.m[key]
            return 0, 0.0
        return int(e[0]), e[1]

    def add(self, key: str, now: float) -> None:
        n, _ = self.get(key, now)
        self.m[key] = [n + 1, now]
        self.m.move_to_end(key)
        while len(self.m) > self.cap:
            self.m.popitem(last=False)

    def clear(self, key: str) -> None:
        self.m.pop(key, None)


def backoff_s(failures: int, free: int, cap_s: float) -> float:
    """No wait for the first `free` failures, then 1, 2, 4 ... seconds, never more than cap_s."""
    return 0.0 if failures < free else min(cap_s, 2.0 ** (failures - free))


class LoginThrottle:
    """Slows password guessing; never locks an account.

    - Per account: 5 free failures, then one attempt at a time, each after a back-off that doubles
      up to 60 s. An attempt in flight counts as a failure until it is decided, so 40 parallel
      guesses get 5 checks, not 40 (admit() decides and reserves in one step under a lock).
    - Per address: 20 free failures, then the same, up to 5 minutes.
    - A browser that has logged in to an account before holds a signed device cookie for it
      (OWASP "device cookies"): its attempts skip both limits above, so an attacker hammering the
      account cannot keep its owner out. A device cookie that fails 5 times stops counting.
    Everything is kept in memory and bounded; a restart forgets it.
    """

    ACCOUNT_FREE, ACCOUNT_CAP_S = 5, 60.0
    ADDRESS_FREE, ADDRESS_CAP_S = 20, 300.0
    DEVICE_FREE = 5
    FORGET_S = 15 * 60
    DEVICE_COOKIE_S = 30 * 86400

    def __init__(self, cap: int = 10000) -> None:
        self.lock = threading.Lock()
        self.accounts = _Failures(cap, self.FORGET_S)
        self.addresses = _Failures(cap, self.FORGET_S)
        self.devices = _Failures(cap, self.DEVICE_COOKIE_S)
        self.in_flight: dict[str, int] = {}
        self.addr_in_flight: dict[str, int] = {}
        self._key = secrets.token_bytes(32)

    # -- device cookies ---------------------------------------------------------------
    def device_cookie(self, user: str) -> str:
        nonce = secrets.token_urlsafe(12)
        return f"{nonce}.{self._mac(nonce, user)}"

    def _mac(self, nonce: str, user: str) -> str:
        return hmac.new(self._key, f"{nonce}\0{user}".encode(), hashlib.sha256).hexdigest()[:32]

    def trusted(self, cookie: str | None, user: str, now: float | None = None) -> str | None:
        """The device cookie's id if it was issued for this account and has not failed too often."""
        if not cookie or "." not in cookie:
            return None
        nonce, _, mac = cookie.partition(".")
        if not hmac.compare_digest(mac, self._mac(nonce, user)):
            return None
        with self.lock:
            n, _ = self.devices.get(nonce, now or time.time())
        return nonce if n < self.DEVICE_FREE else None

    # -- attempts ----------------------------------------------------------------------
    def admit(self, user: str, addr: str, device: str | None, now: float | None = None) -> float:
        """0.0: go ahead (the attempt is reserved; call done() after it). Else: seconds to wait."""
        now = now or time.time()
        with self.lock:
            if device is None:
                wait = 0.0
                n, last = self.accounts.get(user, now)
                pending = n + self.in_flight.get(user, 0)
                if pending >= self.ACCOUNT_FREE:
                    if self.in_flight.get(user, 0):
                        wait = max(wait, 1.0)
                    wait = max(wait, last + backoff_s(n, self.ACCOUNT_FREE, self.ACCOUNT_CAP_S) - now)
                n, last = self.addresses.get(addr, now)
                if n >= self.ADDRESS_FREE:
                    if self.addr_in_flight.get(addr, 0):
                        wait = max(wait, 1.0)
                    wait = max(wait, last + backoff_s(n, self.ADDRESS_FREE, self.ADDRESS_CAP_S) - now)
                if wait > 0:
                    return wait
            self.in_flight[user] = self.in_flight.get(user, 0) + 1
            self.addr_in_flight[addr] = self.addr_in_flight.get(addr, 0) + 1
            return 0.0

    def done(self, user: str, addr: str, device: str | None, ok: bool | None, now: float | None = None) -> None:
        """Ends an admitted attempt: ok True/False counts it, None (never decided) only releases it."""
        now = now or time.time()
        with self.lock:
            for m, k in ((self.in_flight, user), (self.addr_in_flight, addr)):
                m[k] = m.get(k, 0) - 1
                if m[k] <= 0:
                    del m[k]
            if ok is None:
                return
            if ok:
                self.accounts.clear(user)
                if device:
                    self.devices.clear(device)
            elif device:
                self.devices.add(device, now)
            else:
                self.accounts.add(user, now)
                self.addresses.add(addr, now)
