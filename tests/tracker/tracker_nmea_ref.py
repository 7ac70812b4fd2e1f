"""Reference readings: what pynmea2 makes of a sentence, in the firmware
decoder's integer units, so tests compare field by field."""
from __future__ import annotations

import calendar
import datetime as dt
import functools
import operator

import pynmea2

EMPTY = -1


def checksum(body: str) -> str:
    return "%02X" % functools.reduce(operator.xor, body.encode(), 0)


def sentence(body: str) -> str:
    """`GPRMC,...` -> `$GPRMC,...*hh`"""
    return f"${body}*{checksum(body)}"


def _ms(t: dt.time | None) -> int:
    if t is None:
        return EMPTY
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000


def _scaled(v, digits: int) -> int:
    if v is None or v == "":
        return EMPTY
    return round(float(v) * 10**digits)


def _char(v) -> int:
    return ord(v) if v else 0


def e7(deg: float) -> int:
    return round(deg * 1e7)


def reading(msg) -> dict:
    """pynmea2 message -> dict of the decoder's attribute names and values."""
    if isinstance(msg, pynmea2.RMC):
        d = {"rmc_time": _ms(msg.timestamp), "rmc_status": _char(msg.status), "rmc_speed": max(0, _scaled(msg.spd_over_grnd, 3)),
             "rmc_course": _scaled(msg.true_course, 2), "rmc_mode": _char(getattr(msg, "mode_indicator", None))}
        d["rmc_days"] = (calendar.timegm(msg.datestamp.timetuple()) // 86400) if msg.datestamp else EMPTY
        if msg.lat:
            d["rmc_lat"] = e7(msg.latitude)
            d["rmc_lon"] = e7(msg.longitude)
        return d
    if isinstance(msg, pynmea2.GGA):
        d = {"gga_time": _ms(msg.timestamp), "gga_quality": msg.gps_qual or 0,
             "gga_sats": int(msg.num_sats) if msg.num_sats else EMPTY, "gga_hdop": _scaled(msg.horizontal_dil, 2),
             "gga_alt": _scaled(msg.altitude, 2)}
        if msg.lat:
            d["gga_lat"] = e7(msg.latitude)
            d["gga_lon"] = e7(msg.longitude)
        return d
    if isinstance(msg, pynmea2.GSA):
        return {"gsa_fix": int(msg.mode_fix_type) if msg.mode_fix_type else EMPTY, "gsa_pdop": _scaled(msg.pdop, 2),
                "gsa_hdop": _scaled(msg.hdop, 2), "gsa_vdop": _scaled(msg.vdop, 2)}
    if isinstance(msg, pynmea2.VTG):
        return {"vtg_course": _scaled(msg.true_track, 2), "vtg_kn": _scaled(msg.spd_over_grnd_kts, 3),
                "vtg_kmh": _scaled(msg.spd_over_grnd_kmph, 3), "vtg_mode": _char(getattr(msg, "faa_mode", None))}
    raise TypeError(type(msg))


def decoder_reading(dec, keys) -> dict:
    from roadedge.tracker.nmea import to_e7

    out = {}
    for k in keys:
        v = getattr(dec, k)
        out[k] = to_e7(v) if k.endswith(("_lat", "_lon")) else v
    return out
