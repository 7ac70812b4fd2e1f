# TLS for the MQTT client, in its own module: client.py imports it only when a
# board config asks for mqtts://, so a plain-TCP device never loads this code
# (issue 18: every function loaded as .mpy costs heap).
from roadedge.core.compat import IS_MICROPYTHON


def context(ca):
    """An SSL context verifying the broker against ca (DER bytes, or a path
    to them), or, without ca, one that does not verify (MicroPython) / the
    system's CAs (CPython)."""
    import ssl

    if isinstance(ca, str):
        with open(ca, "rb") as f:
            ca = f.read()
    if IS_MICROPYTHON:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED if ca else ssl.CERT_NONE
        if ca:
            ctx.load_verify_locations(cadata=bytes(ca))
        return ctx
    return ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()  # type: ignore
