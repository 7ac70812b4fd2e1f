# roadedge.core.auth: HMAC-SHA256, signed commands, replay/expiry/forgery.
import json
import fwtest
from roadedge.core import auth
from roadedge.core.auth import CommandAuth, sign_command, hmac_hex

KEY = bytes(range(32))
DEV = "vsl-k012-n"
NOW = 1790000000


def _auth(path=None, key=KEY):
    return CommandAuth(key, DEV, path or fwtest.tmpdir("auth") + "/cmdctr.json")


def test_hmac_rfc4231_vectors():
    # RFC 4231 test cases 1, 2 and 6 (key longer than the block).
    assert hmac_hex(b"\x0b" * 20, b"Hi There") == \
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    assert hmac_hex(b"Jefe", b"what do ya want for nothing?") == \
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert hmac_hex(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First") == \
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_equal():
    assert auth.equal("abc", "abc") and auth.equal(b"", b"")
    assert not auth.equal("abc", "abd") and not auth.equal("abc", "ab") and not auth.equal("", "a")


def test_valid_command_accepted():
    a = _auth()
    code, body = a.check("limit", sign_command(KEY, DEV, "limit", 1, NOW + 60, {"kmh": 60}), NOW)
    assert code == "ok"
    assert body is not None and body["args"] == {"kmh": 60} and body["ctr"] == 1
    assert a.counts == {}
    # args may be omitted by the signer: treated as {}
    code, body = a.check("limit", sign_command(KEY, DEV, "limit", 2, NOW + 60), NOW)
    assert code == "ok" and body is not None and body["args"] == {}


def test_forged_rejected_and_counted():
    a = _auth()
    p = json.loads(sign_command(KEY, DEV, "limit", 5, NOW + 60, {"kmh": 60}))
    # body altered after signing
    p["body"] = p["body"].replace("60}", "120}")
    assert a.check("limit", json.dumps(p).encode(), NOW) == ("bad_mac", None)
    # signed with another key
    assert a.check("limit", sign_command(b"k" * 32, DEV, "limit", 6, NOW + 60, {}), NOW)[0] == "bad_mac"
    # mac mangled / empty
    p = json.loads(sign_command(KEY, DEV, "limit", 7, NOW + 60, {}))
    p["mac"] = p["mac"][:-1] + ("0" if p["mac"][-1] != "0" else "1")
    assert a.check("limit", json.dumps(p), NOW)[0] == "bad_mac"
    p["mac"] = ""
    assert a.check("limit", json.dumps(p), NOW)[0] == "bad_mac"
    assert a.counts == {"bad_mac": 4}
    # a forged command does not advance the counter: the genuine ctr 5 still works
    assert a.check("limit", sign_command(KEY, DEV, "limit", 5, NOW + 60, {}), NOW)[0] == "ok"


def test_replay_rejected_same_and_lower_and_after_reboot():
    d = fwtest.tmpdir("auth")
    path = d + "/cmdctr.json"
    a = _auth(path)
    c10 = sign_command(KEY, DEV, "limit", 10, NOW + 60, {"kmh": 80})
    assert a.check("limit", c10, NOW)[0] == "ok"
    assert a.check("limit", c10, NOW)[0] == "replay"
    assert a.check("limit", sign_command(KEY, DEV, "limit", 9, NOW + 60, {}), NOW)[0] == "replay"
    assert a.counts == {"replay": 2}
    # Reboot: a fresh CommandAuth reads the persisted counter.
    b = _auth(path)
    assert b.last_ctr == 10
    assert b.check("limit", c10, NOW)[0] == "replay"
    assert b.check("limit", sign_command(KEY, DEV, "limit", 11, NOW + 60, {}), NOW)[0] == "ok"
    assert _auth(path).check("limit", sign_command(KEY, DEV, "limit", 11, NOW + 60, {}), NOW)[0] == "replay"


def test_expired_rejected_with_skew_tolerance():
    a = _auth()
    assert a.check("blank", sign_command(KEY, DEV, "blank", 1, NOW - 31, {}), NOW)[0] == "expired"
    assert a.check("blank", sign_command(KEY, DEV, "blank", 2, NOW - 29, {}), NOW)[0] == "ok"  # within 30 s skew
    assert a.counts == {"expired": 1}


def test_clock_unset_refuses():
    a = _auth()
    assert a.check("blank", sign_command(KEY, DEV, "blank", 1, NOW + 60, {}), None)[0] == "no_clock"
    assert a.counts == {"no_clock": 1}
    assert a.last_ctr == 0  # not consumed: the same command works once time is known
    assert a.check("blank", sign_command(KEY, DEV, "blank", 1, NOW + 60, {}), NOW)[0] == "ok"


def test_wrong_device_and_command():
    a = _auth()
    assert a.check("limit", sign_command(KEY, "vsl-other", "limit", 1, NOW + 60, {}), NOW)[0] == "wrong_device"
    assert a.check("blank", sign_command(KEY, DEV, "limit", 2, NOW + 60, {}), NOW)[0] == "wrong_command"
    assert a.counts == {"wrong_device": 1, "wrong_command": 1}


def test_bad_json_variants():
    a = _auth()
    body = json.dumps({"dev": DEV, "cmd": "x", "ctr": "1", "exp": NOW + 60, "args": {}})
    signed_bad_ctr = json.dumps({"body": body, "mac": hmac_hex(KEY, body)})
    body2 = json.dumps({"dev": DEV, "cmd": "x", "ctr": True, "exp": NOW + 60, "args": {}})
    signed_bool_ctr = json.dumps({"body": body2, "mac": hmac_hex(KEY, body2)})
    body3 = "[1, 2"
    signed_broken = json.dumps({"body": body3, "mac": hmac_hex(KEY, body3)})
    cases = [b"", b"{", b"\xff\xfe", b"[]", b'{"body": 1, "mac": "00"}', b'{"mac": "00"}',
             signed_bad_ctr, signed_bool_ctr, signed_broken, b"{" + b" " * 3000 + b"}"]
    for c in cases:
        assert a.check("x", c, NOW) == ("bad_json", None), c
    assert a.counts == {"bad_json": len(cases)}


def test_oversized_refused_before_parsing():
    a = _auth()
    big = sign_command(KEY, DEV, "x", 1, NOW + 60, {"pad": "a" * 2100})
    assert len(big) > 2048
    assert a.check("x", big, NOW)[0] == "bad_json"


def test_hex_key_and_short_key():
    a = CommandAuth("00" * 32, DEV, fwtest.tmpdir("auth") + "/c.json")
    assert a.check("x", sign_command(bytes(32), DEV, "x", 1, NOW + 60, {}), NOW)[0] == "ok"
    fwtest.raises(ValueError, CommandAuth, b"short", DEV, "/tmp/x.json")
    fwtest.raises(ValueError, auth.key_from_hex, "zz")


def test_corrupt_counter_file_falls_back_to_zero():
    d = fwtest.tmpdir("auth")
    with open(d + "/c.json", "w") as f:
        f.write("{bad")
    a = CommandAuth(KEY, DEV, d + "/c.json")
    assert a.last_ctr == 0


TEN_YEARS_S = 10 * 365 * 86400


def test_far_future_counter_refused_and_locks_nothing_out_across_reboots():
    path = fwtest.tmpdir("auth") + "/c.json"
    a = _auth(path)
    now_ms = NOW * 1000
    # validly signed, counter 10 years ahead of its own expiry: refused, counted, not recorded
    far = sign_command(KEY, DEV, "limit", now_ms + TEN_YEARS_S * 1000, NOW + 60, {})
    assert a.check("limit", far, NOW) == ("future", None)
    # counter and expiry both 10 years ahead: the expiry is beyond any signer's validity
    far2 = sign_command(KEY, DEV, "limit", now_ms + TEN_YEARS_S * 1000, NOW + TEN_YEARS_S, {})
    assert a.check("limit", far2, NOW) == ("future", None)
    assert a.counts == {"future": 2} and a.last_ctr == 0
    assert a.check("limit", sign_command(KEY, DEV, "limit", now_ms, NOW + 60, {}), NOW)[0] == "ok"
    # after a reboot the next valid command still works and the far-future one is still refused
    b = _auth(path)
    assert b.check("limit", far, NOW + 1)[0] == "future"
    assert b.check("limit", sign_command(KEY, DEV, "limit", now_ms + 1000, NOW + 61, {}), NOW + 1)[0] == "ok"


def test_longest_validity_accepted():
    a = _auth()
    exp = NOW + auth.MAX_TTL_S
    assert a.check("limit", sign_command(KEY, DEV, "limit", exp * 1000, exp, {}), NOW)[0] == "ok"


def test_stored_far_future_counter_is_lowered():
    # a counter stored by older firmware 10 years ahead locks the device out for at most the
    # longest validity (+ skew), not for 10 years
    from roadedge.core import state

    path = fwtest.tmpdir("auth") + "/c.json"
    state.write_json(path, {"ctr": (NOW + TEN_YEARS_S) * 1000})
    a = _auth(path)
    assert a.check("limit", sign_command(KEY, DEV, "limit", NOW * 1000, NOW + 60, {}), NOW)[0] == "replay"
    later = NOW + auth.MAX_TTL_S + 61
    assert a.check("limit", sign_command(KEY, DEV, "limit", later * 1000, later + 60, {}), later)[0] == "ok"
    assert _auth(path).last_ctr == later * 1000


def test_new_key_resets_stored_counter():
    path = fwtest.tmpdir("auth") + "/c.json"
    a = _auth(path)
    assert a.check("limit", sign_command(KEY, DEV, "limit", NOW * 1000, NOW + 60, {}), NOW)[0] == "ok"
    assert _auth(path).last_ctr == NOW * 1000
    new = bytes(range(1, 33))
    b = _auth(path, key=new)
    assert b.last_ctr == 0
    assert b.check("limit", sign_command(new, DEV, "limit", 1, NOW + 60, {}), NOW)[0] == "ok"
    # the old key's commands do not verify under the new one
    assert b.check("limit", sign_command(KEY, DEV, "limit", 2, NOW + 60, {}), NOW)[0] == "bad_mac"
