"""Console accounts: a JSON file of users with scrypt password hashes, and login sessions."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from pathlib import Path

ROLES = ("viewer", "dispatcher", "supervisor")
N, R, P = 2**14, 8, 1
SESSION_S = 12 * 3600


def hash_password(pw: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    h = hashlib.scrypt(pw.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${salt.hex()}${h.hex()}"


def check_password(pw: str, stored: str) -> bool:
    try:
        alg, n, r, p, salt, h = stored.split("$")
        if alg != "scrypt":
            return False
        got = hashlib.scrypt(pw.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(h) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), h)


class Users:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.users: dict[str, dict] = {}
        if self.path.exists():
            data = json.loads(self.path.read_text())
            self.users = data.get("users", {})

    def add(self, name: str, role: str, password: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError("user names are letters, digits, '-', '_', '.'")
        if len(password) < 8:
            raise ValueError("password must be at least 8 characters")
        self.users[name] = {"role": role, "hash": hash_password(password)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"users": self.users}, indent=1))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    def verify(self, name: str, password: str) -> str | None:
        """The user's role if the password is right, else None (same work either way)."""
        u = self.users.get(name)
        ok = check_password(password, u["hash"] if u else hash_password("x" * 8, b"0" * 16))
        return u["role"] if (u and ok) else None


class Sessions:
    """In-memory sessions: random token (HttpOnly cookie) -> user, role, CSRF token."""

    def __init__(self) -> None:
        self.s: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.failures: dict[str, list[float]] = {}

    def create(self, user: str, role: str) -> dict:
        tok = secrets.token_urlsafe(32)
        sess = {"token": tok, "user": user, "role": role, "csrf": secrets.token_urlsafe(24),
                "expires": time.time() + SESSION_S}
        with self.lock:
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

    def throttled(self, user: str, now: float | None = None) -> bool:
        """More than 5 failed logins for this name in 5 minutes: refuse for a while."""
        now = now or time.time()
        with self.lock:
            f = [t for t in self.failures.get(user, []) if now - t < 300]
            self.failures[user] = f
            return len(f) >= 5

    def failed(self, user: str) -> None:
        with self.lock:
            self.failures.setdefault(user, []).append(time.time())
