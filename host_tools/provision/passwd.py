"""Mosquitto password file lines, compatible with `mosquitto_passwd` (Mosquitto 2.0).

Format per line: `user:$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`.
Generated here with hashlib so provisioning works where mosquitto_passwd is not
installed; tests check Mosquitto itself accepts the result.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

# Mosquitto's own default is 101; every connect pays this once, devices connect rarely.
ITERATIONS = 10000
SALT_BYTES = 12


def hash_password(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def verify(password: str, hashed: str) -> bool:
    try:
        _, seven, it, salt, dk = hashed.split("$")
    except ValueError:
        return False
    if seven != "7":
        return False
    calc = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(it))
    return hmac.compare_digest(calc, base64.b64decode(dk))


def hashes(users: dict[str, str], previous: dict[str, str] | None = None) -> dict[str, str]:
    """user -> `$7$` hash for user -> cleartext password.

    previous: user -> existing hash; kept when it still matches, so re-provisioning does not
    rewrite every hash (diffs stay readable, and no one pays the iterations again)."""
    out = {}
    for user in sorted(users):
        if ":" in user:
            raise ValueError(f"user name {user!r} may not contain ':'")
        old = (previous or {}).get(user)
        out[user] = old if old and verify(users[user], old) else hash_password(users[user])
    return out


def split_hash(hashed: str) -> tuple[int, str, str]:
    """(iterations, base64 salt, base64 hash) of a `$7$` hash (the dynamic-security plugin's fields)."""
    _, seven, it, salt, dk = hashed.split("$")
    if seven != "7":
        raise ValueError("not a $7$ (PBKDF2-SHA512) hash")
    return int(it), salt, dk


def password_file(users: dict[str, str], previous: dict[str, str] | None = None) -> str:
    """Text of a password file for user -> cleartext password (previous: as for hashes())."""
    return "".join(f"{user}:{h}\n" for user, h in hashes(users, previous).items())


def read_password_file(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            u, h = line.split(":", 1)
            out[u] = h
    return out


def new_password() -> str:
    return secrets.token_urlsafe(24)


def new_command_key() -> str:
    return secrets.token_hex(32)
