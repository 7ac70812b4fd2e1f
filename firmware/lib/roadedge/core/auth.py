# Signed commands (docs/topics.md): HMAC-SHA256 over the exact body text, a
# per-device strictly increasing counter (persisted, so a replay after a
# reboot is still refused) and an expiry. Signers use wall-clock milliseconds
# as the counter (host_tools/keys.py), so a counter may never be ahead of its
# own expiry, nor an expiry further ahead than MAX_TTL_S: one validly signed
# far-future counter is refused instead of locking out every later command. Shared by firmware (CommandAuth)
# and host tools (sign_command). MicroPython has no hmac module, so HMAC is
# built here on hashlib.sha256 (RFC 2104, block size 64).
import json
import hashlib
import binascii
from roadedge.core import state
from roadedge.core.compat import const

_MAX_PAYLOAD = const(2048)
_BLOCK = const(64)

# Rejection codes (ack "code"); "no_clock" = expiry cannot be judged yet.
OK = "ok"
BAD_JSON = "bad_json"
BAD_MAC = "bad_mac"
WRONG_DEVICE = "wrong_device"
WRONG_COMMAND = "wrong_command"
REPLAY = "replay"
EXPIRED = "expired"
NO_CLOCK = "no_clock"
FUTURE = "future"  # counter ahead of its expiry, or expiry beyond MAX_TTL_S

MAX_TTL_S = const(900)  # the longest validity a signer may give a command (hosts use 30-120 s)

_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _translate(key, table):
    return bytes(table[b] for b in key)


def hmac_sha256(key, msg):
    """HMAC-SHA256(key, msg) -> 32 bytes."""
    if isinstance(key, str):
        key = key.encode()
    if isinstance(msg, str):
        msg = msg.encode()
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(_translate(key, _IPAD))
    inner.update(msg)
    outer = hashlib.sha256(_translate(key, _OPAD))
    outer.update(inner.digest())
    return outer.digest()


def hmac_hex(key, msg):
    return binascii.hexlify(hmac_sha256(key, msg)).decode()


def equal(a, b):
    """Constant-time comparison of two str/bytes (time depends on length
    only, never on where they differ)."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    diff = len(a) ^ len(b)
    n = len(a) if len(a) < len(b) else len(b)
    for i in range(n):
        diff |= a[i] ^ b[i]
    return diff == 0


def key_from_hex(text):
    """The command key from its config form (hex text); ValueError if bad."""
    try:
        key = binascii.unhexlify(text)
    except Exception:
        raise ValueError("command_key must be hex")
    if len(key) < 16:
        raise ValueError("command_key must be at least 16 bytes")
    return key


def sign_command(key, dev, cmd, ctr, exp, args=None):
    """The payload for re/<dev>/cmd/<cmd>: b'{"body": "<JSON>", "mac": "<hex>"}'."""
    body = json.dumps({"dev": dev, "cmd": cmd, "ctr": ctr, "exp": exp, "args": args or {}})
    return json.dumps({"body": body, "mac": hmac_hex(key, body)}).encode()


def _is_int(v):
    return type(v) is int


def _is_num(v):
    return type(v) is int or type(v) is float


class CommandAuth:
    """Verifies signed commands for one device.

    check(cmd_name, payload, now_s) -> (code, body or None); code "ok" means
    the counter has been recorded (persisted to state_path) and the command
    may run. Rejections are counted in .counts by code."""

    def __init__(self, key, dev_id, state_path, skew_s=30):
        if isinstance(key, str):
            key = key_from_hex(key)
        if len(key) < 16:
            raise ValueError("command key too short")
        self._key = key
        self.dev_id = dev_id
        self.state_path = state_path
        self.skew_s = skew_s
        self.counts = {}
        self.unsaved = 0  # accepted counters that could not be written to flash
        # the stored counter belongs to the key that signed it: a new key starts from 0
        self._kid = hmac_hex(key, "roadedge cmd ctr")[:16]
        st = state.read_json(state_path, None)
        self.last_ctr = st.get("ctr", 0) if isinstance(st, dict) else 0
        if not _is_int(self.last_ctr) or (isinstance(st, dict) and st.get("kid", self._kid) != self._kid):
            self.last_ctr = 0

    def _reject(self, code):
        self.counts[code] = self.counts.get(code, 0) + 1
        return code, None

    def check(self, cmd_name, payload, now_s):
        if payload is None or len(payload) > _MAX_PAYLOAD:
            return self._reject(BAD_JSON)
        try:
            if isinstance(payload, (bytes, bytearray, memoryview)):
                payload = bytes(payload).decode()
            outer = json.loads(payload)
        except (ValueError, UnicodeError, TypeError):
            return self._reject(BAD_JSON)
        if not isinstance(outer, dict):
            return self._reject(BAD_JSON)
        text = outer.get("body")
        mac = outer.get("mac")
        if not isinstance(text, str) or not isinstance(mac, str):
            return self._reject(BAD_JSON)
        # MAC before parsing the body: forged bodies are never interpreted.
        if not equal(hmac_hex(self._key, text), mac.lower()):
            return self._reject(BAD_MAC)
        try:
            body = json.loads(text)
        except ValueError:
            return self._reject(BAD_JSON)
        if not isinstance(body, dict):
            return self._reject(BAD_JSON)
        ctr = body.get("ctr")
        exp = body.get("exp")
        args = body.get("args", {})
        if (not isinstance(body.get("dev"), str) or not isinstance(body.get("cmd"), str)
                or not isinstance(ctr, int) or not _is_int(ctr) or not isinstance(exp, (int, float))
                or not _is_num(exp) or not isinstance(args, dict)):
            return self._reject(BAD_JSON)
        if body["dev"] != self.dev_id:
            return self._reject(WRONG_DEVICE)
        if body["cmd"] != cmd_name:
            return self._reject(WRONG_COMMAND)
        if now_s is not None:
            # No counter accepted under these rules exceeds this ceiling; one stored above it
            # (older firmware, a clock since corrected) is lowered, so it locks nothing out
            # for longer than the longest validity.
            ceiling = int((now_s + MAX_TTL_S + 2 * self.skew_s) * 1000)
            if self.last_ctr > ceiling:
                self.last_ctr = ceiling
        if ctr <= self.last_ctr:
            return self._reject(REPLAY)
        if now_s is None:
            return self._reject(NO_CLOCK)
        if exp + self.skew_s < now_s:
            return self._reject(EXPIRED)
        if ctr > (exp + self.skew_s) * 1000 or exp > now_s + MAX_TTL_S + self.skew_s:
            return self._reject(FUTURE)
        self.last_ctr = ctr
        try:
            state.write_json(self.state_path, {"ctr": ctr, "kid": self._kid})
        except OSError:
            # Still refused in RAM until reboot; after a reboot the expiry
            # bounds any replay window. Counted for telemetry.
            self.unsaved += 1
        body["args"] = args
        return OK, body
