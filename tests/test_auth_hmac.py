"""The firmware's own HMAC-SHA256 (MicroPython has no hmac module) agrees
with CPython's hmac for every key length around the block size, and a
command signed by roadedge.core.auth verifies with the standard library."""
from __future__ import annotations

import hashlib
import hmac
import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st



from roadedge.core import auth  # noqa: E402


def _ref(key: bytes, msg: bytes) -> str:
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def test_every_key_length_around_block_size() -> None:
    msg = b"re/vsl-k012-n/cmd/limit"
    for n in range(0, 200):
        key = os.urandom(n)
        assert auth.hmac_hex(key, msg) == _ref(key, msg), n
        assert auth.hmac_sha256(key, msg) == hmac.digest(key, msg, "sha256")


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=300), msg=st.binary(max_size=3000))
def test_matches_stdlib_hmac(key: bytes, msg: bytes) -> None:
    assert auth.hmac_hex(key, msg) == _ref(key, msg)


@settings(max_examples=100, deadline=None)
@given(a=st.binary(max_size=80), b=st.binary(max_size=80))
def test_equal_matches_compare_digest(a: bytes, b: bytes) -> None:
    assert auth.equal(a, b) == hmac.compare_digest(a, b)


def test_signed_command_verifies_with_stdlib() -> None:
    key = os.urandom(32)
    payload = auth.sign_command(key, "bcn-07", "mode", 42, 1790000060, {"mode": "guidance"})
    outer = json.loads(payload)
    assert set(outer) == {"body", "mac"}
    assert hmac.compare_digest(outer["mac"], _ref(key, outer["body"].encode()))
    body = json.loads(outer["body"])
    assert body == {"dev": "bcn-07", "cmd": "mode", "ctr": 42, "exp": 1790000060, "args": {"mode": "guidance"}}


def test_host_signed_command_accepted_by_device_check(tmp_path) -> None:
    key = os.urandom(32)
    a = auth.CommandAuth(key, "bcn-07", str(tmp_path / "ctr.json"))
    body = json.dumps({"dev": "bcn-07", "cmd": "mode", "ctr": 1, "exp": 1060, "args": {}})
    # signed with the standard library, as any third-party tool could
    payload = json.dumps({"body": body, "mac": _ref(key, body.encode()).upper()}).encode()
    assert a.check("mode", payload, 1000)[0] == "ok"
