"""Console accounts: a JSON file of users with Argon2id password hashes, a password policy,
login sessions and the login throttle.

Hashes written before Argon2 (scrypt$N$r$p$salt$hash) still verify and are replaced by an
Argon2id hash at the account's next successful login.
"""
from __future__ import annotations

import fcntl
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


class AccountConflict(ValueError):
    """The change would clash with the accounts as they are (a name taken, no supervisor left)."""


class UnknownAccount(LookupError):
    pass


class Users:
    """The accounts file, read again whenever it changes on disk: an account added, disabled or
    re-roled by `roadedge dispatch --add-user` (another process) or by a supervisor in the console
    counts at the next request, without a restart.

    A record: {"role", "hash", "disabled", "epoch", "created", "changed", "by"}. `epoch` goes up when
    the password is set again, which ends the sessions opened with the old one. Writers (the console,
    the CLI) take an exclusive lock on `<file>.lock` and write a new file in one rename, so readers
    never see half a file and two writers never lose each other's change. An accounts file that does
    not parse fails closed: nobody logs in and no session is honoured until it is fixed, and it is
    never overwritten.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        self._users: dict[str, dict] = {}
        self._sig: tuple | None = None
        self.unreadable: str | None = None  # why the file could not be read, while it cannot
        self._dummy: str | None = None
        self._refresh()

    # -- reading: always the file as it is now --------------------------------------
    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
            sig: tuple | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            sig = None
        with self.lock:
            if sig == self._sig and self._sig is not None:
                return
            users: dict[str, dict] = {}
            problem = None
            if sig is not None:
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                    users = data.get("users") if isinstance(data, dict) else None
                    if not isinstance(users, dict) or not all(
                            isinstance(u, dict) and u.get("role") in ROLES and isinstance(u.get("hash"), str)
                            for u in users.values()):
                        raise ValueError("not an accounts file")
                except (OSError, ValueError, UnicodeDecodeError) as e:
                    users, problem = {}, f"accounts file {self.path} unreadable: {e}"
            self._users, self._sig, self.unreadable = users, sig, problem

    @property
    def users(self) -> dict[str, dict]:
        self._refresh()
        return self._users

    def account(self, name: str) -> dict | None:
        """The account as the file has it now (a copy), or None."""
        u = self.users.get(name)
        return dict(u) if u is not None else None

    def list(self) -> list[dict]:
        """Every account without its hash, by name."""
        return [{"name": n, "role": u["role"], "disabled": bool(u.get("disabled")), "created": u.get("created"),
                 "changed": u.get("changed"), "by": u.get("by")} for n, u in sorted(self.users.items())]

    # -- writing: lock, read the file again, change, write it in one rename ---------------
    def _mutate(self, change) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)  # released when the file closes
            self._sig = None  # whatever is cached, read what is on disk now
            self._refresh()
            if self.unreadable:
                raise AccountConflict(f"{self.unreadable}: fix or restore it first (it is not overwritten)")
            users = {n: dict(u) for n, u in self._users.items()}
            change(users)
            self._save(users)
            self._sig = None
            self._refresh()

    def _save(self, users: dict[str, dict]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps({"users": users}, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str) or not name or len(name) > MAX_NAME or \
                not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or not name.isascii():
            raise ValueError(f"user names are up to {MAX_NAME} letters, digits, '-', '_', '.'")

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")

    @staticmethod
    def _stamp(u: dict, by: str | None) -> None:
        u["changed"] = time.time()
        u["by"] = by

    @staticmethod
    def _supervised(users: dict[str, dict]) -> bool:
        return any(u["role"] == "supervisor" and not u.get("disabled") for u in users.values())

    def add(self, name: str, role: str, password: str, by: str | None = None, replace: bool = True) -> None:
        """Create an account, or (replace) set an existing one's role and password."""
        self._check_role(role)
        self._check_name(name)
        problem = password_problem(name, password)
        if problem:
            raise ValueError(problem)
        h = hash_password(password)  # outside the lock: it takes a while

        def change(users: dict[str, dict]) -> None:
            old = users.get(name)
            if old is not None and not replace:
                raise AccountConflict(f"an account named {name} exists")
            had = self._supervised(users)
            u = {**(old or {"created": time.time()}), "role": role, "hash": h}
            if old is not None:
                u["epoch"] = int(old.get("epoch", 0)) + 1  # a new password ends the old sessions
            self._stamp(u, by)
            users[name] = u
            if had and not self._supervised(users):
                raise AccountConflict("at least one enabled supervisor must remain")

        self._mutate(change)

    def _update(self, name: str, by: str | None, apply) -> None:
        def change(users: dict[str, dict]) -> None:
            if name not in users:
                raise UnknownAccount(f"no account named {name}")
            had = self._supervised(users)
            apply(users[name])
            self._stamp(users[name], by)
            if had and not self._supervised(users):  # nobody could manage accounts in the console
                raise AccountConflict("at least one enabled supervisor must remain")

        self._mutate(change)

    def set_role(self, name: str, role: str, by: str | None = None) -> None:
        self._check_role(role)
        self._update(name, by, lambda u: u.update(role=role))

    def set_disabled(self, name: str, disabled: bool, by: str | None = None) -> None:
        self._update(name, by, lambda u: u.update(disabled=bool(disabled)))

    def set_password(self, name: str, password: str, by: str | None = None) -> None:
        problem = password_problem(name, password)
        if problem:
            raise ValueError(problem)
        h = hash_password(password)
        self._update(name, by, lambda u: u.update(hash=h, epoch=int(u.get("epoch", 0)) + 1))

    # -- logging in ---------------------------------------------------------------------
    def login(self, name: str, password: str) -> dict | None:
        """{"role", "epoch", "disabled"} if the password is right, else None. An unknown name costs
        the same work as a known one (no user enumeration by timing). Blocking: call it from a worker."""
        u = self.account(name)
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

            def upgrade(users: dict[str, dict]) -> None:
                if users.get(name, {}).get("hash") == stored:
                    users[name]["hash"] = new

            try:
                self._mutate(upgrade)
            except (OSError, AccountConflict):  # a read-only accounts file: log in anyway, upgrade next time
                pass
        return {"role": u["role"], "epoch": int(u.get("epoch", 0)), "disabled": bool(u.get("disabled"))}

    def verify(self, name: str, password: str) -> str | None:
        """The role of an enabled account whose password is right, else None."""
        a = self.login(name, password)
        return a["role"] if a and not a["disabled"] else None


class Sessions:
    """In-memory sessions: random token (HttpOnly cookie) -> user, role, CSRF token, the account's
    password epoch. `current` holds each one against the accounts store on every use."""

    def __init__(self) -> None:
        self.s: dict[str, dict] = {}
        self.lock = threading.Lock()

    def create(self, user: str, role: str, epoch: int = 0) -> dict:
        tok = secrets.token_urlsafe(32)
        sess = {"token": tok, "user": user, "role": role, "csrf": secrets.token_urlsafe(24),
                "expires": time.time() + SESSION_S, "epoch": epoch}
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

    def current(self, tok: str | None, users: Users) -> dict | None:
        """The session as the accounts store has it now: ended (and forgotten) once its account is
        gone, disabled or has a new password; its role is the account's role now. While the accounts
        file is unreadable no session is honoured, and none is forgotten."""
        sess = self.get(tok)
        if sess is None:
            return None
        acct = users.account(sess["user"])
        if users.unreadable:
            return None
        if acct is None or acct.get("disabled") or int(acct.get("epoch", 0)) != sess.get("epoch", 0):
            self.drop(sess["token"])
            return None
        if acct["role"] != sess["role"]:
            with self.lock:
                sess["role"] = acct["role"]
        return sess

    def keep(self, sess: dict, users: Users) -> None:
        """After a user set their own password: this session carries on with the new epoch."""
        acct = users.account(sess["user"])
        if acct is not None:
            with self.lock:
                sess["epoch"] = int(acct.get("epoch", 0))

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
