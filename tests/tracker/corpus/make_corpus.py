"""Writes receivers.nmea: sentences modelled on the documented NMEA output of receiver families (their
public protocol manuals), checksums computed here, and expected.json: the fixes each family must give,
read with pynmea2 (lat/lon/time), valid epochs marked by hand. Re-run after editing FAMILIES:
    .venv/bin/python tests/tracker/corpus/make_corpus.py"""
from __future__ import annotations

import calendar
import json
from functools import reduce
from pathlib import Path

import pynmea2

HERE = Path(__file__).resolve().parent
UBX = "\xb5b\x01\x07\x5c\x00\x24\x13"  # UBX-NAV-PVT header bytes ('$' among them) before an NMEA line

# family -> list of (line body or raw, valid epoch marker). "!" marks the epoch's position sentence to expect.
FAMILIES = {
    "ublox_m8_nmea41": [  # u-blox M8 (NMEA 4.10): RMC VTG GGA GSA GSV GLL TXT; UBX interleaved
        "GNRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,151126,,,A,V",
        "GNVTG,77.52,T,,M,0.004,N,0.008,K,A",
        UBX + "$GNGGA,083559.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,",
        "GNGSA,A,3,23,29,07,08,09,18,26,,,,,,1.94,1.18,1.54,1",
        "GNGSA,A,3,65,66,,,,,,,,,,,1.94,1.18,1.54,2",
        "GPGSV,3,1,10,23,38,230,44,29,71,156,47,07,29,116,41,08,09,081,36,1",
        "GNGLL,4717.11364,N,00833.91565,E,083559.00,A,A",
        "PUBX,00,083559.00,4717.11364,N,00833.91565,E,546.589,G3,2.1,2.0,0.007,77.52,0.007,,0.92,1.19,0.77,9,0,0",
        "GNTXT,01,01,02,u-blox AG - www.u-blox.com",
        "GNRMC,083600.00,A,4717.11440,N,00833.91530,E,0.010,77.52,151126,,,A,V",
        "GNVTG,77.52,T,,M,0.010,N,0.019,K,A",
        UBX + "$GNGGA,083600.00,4717.11440,N,00833.91530,E,1,08,1.01,499.6,M,48.0,M,,",
        "GNGSA,A,3,23,29,07,08,09,18,26,,,,,,1.94,1.18,1.54,1",
        "GNRMC,083601.00,A,4717.11440,N,00833.91530,E,0.010,77.52,151126,,,E,V",  # dead reckoning: refused
        "GNVTG,77.52,T,,M,0.010,N,0.019,K,E",
        "GNGGA,083601.00,4717.11440,N,00833.91530,E,6,08,1.01,499.6,M,48.0,M,,",
        "GNGSA,A,3,23,29,07,08,09,18,26,,,,,,1.94,1.18,1.54,1",
        "GNRMC,083602.00,A,4717.11450,N,00833.91540,E,0.010,77.52,151126,,,A,V",
    ],
    "quectel_l76_nmea30": [  # Quectel L76 (MTK core, NMEA 3.01): RMC VTG GGA GSA GSV GLL
        "GPRMC,013732.000,A,3150.7238,N,11711.7278,E,0.00,0.00,151126,,,A",
        "GPVTG,0.00,T,,M,0.00,N,0.00,K,A",
        "GPGGA,013732.000,3150.7238,N,11711.7278,E,1,5,1.98,69.3,M,0.0,M,,",
        "GPGSA,A,3,10,24,12,32,25,,,,,,,,2.21,1.98,0.98",
        "GLGSA,A,3,74,75,,,,,,,,,,,2.21,1.98,0.98",
        "GPRMC,013733.000,A,3150.7240,N,11711.7280,E,0.20,10.00,151126,,,A",
        "GPVTG,10.00,T,,M,0.20,N,0.37,K,A",
        "GPGGA,013733.000,3150.7240,N,11711.7280,E,1,5,1.98,69.3,M,0.0,M,,",
        "GPGSA,A,3,10,24,12,32,25,,,,,,,,2.21,1.98,0.98",
        "PQTMVER,MODULE_L76,1.0",
        "GPRMC,013734.000,A,3150.7240,N,11711.7280,E,0.20,10.00,151126,,,A",
    ],
    "skytraq_venus8_long_gga": [  # SkyTraq Venus8 high-precision: 7-decimal minutes, GGA of 85+ chars
        "GNGGA,060932.448,2447.0959361,N,12100.5234560,E,2,12,0.71,156.417,M,15.245,M,1.0,0000",
        "GNGSA,A,3,05,12,15,18,20,21,24,25,29,,,,1.20,0.71,0.97",
        "GNRMC,060932.448,A,2447.0959361,N,12100.5234560,E,000.0,000.0,151126,,,D",
        "GNVTG,000.0,T,,M,000.0,N,000.0,K,D",
        "GNGGA,060933.448,2447.0959400,N,12100.5234600,E,2,12,0.71,156.417,M,15.245,M,1.0,0000",
        "GNGSA,A,3,05,12,15,18,20,21,24,25,29,,,,1.20,0.71,0.97",
        "GNRMC,060933.448,A,2447.0959400,N,12100.5234600,E,000.0,000.0,151126,,,D",
        "GNVTG,000.0,T,,M,000.0,N,000.0,K,D",
        "GNGGA,060934.448,2447.0959400,N,12100.5234600,E,2,12,0.71,156.417,M,15.245,M,1.0,0000",
    ],
    "sirf_iv_nmea22": [  # SiRF star IV (NMEA 2.2: no mode field): GGA GSA GSV RMC
        "GPGGA,161229.487,3723.2475,N,12158.3416,W,1,07,1.0,9.0,M,,,,0000",
        "GPGSA,A,3,07,02,26,27,09,04,15,,,,,,1.8,1.0,1.5",
        "GPGSV,2,1,07,07,79,048,42,02,51,062,43,26,36,256,42,27,27,138,42",
        "GPRMC,161229.487,A,3723.2475,N,12158.3416,W,0.13,309.62,151126,,",
        "GPGGA,161230.487,3723.2476,N,12158.3417,W,1,07,1.0,9.0,M,,,,0000",
        "GPGSA,A,3,07,02,26,27,09,04,15,,,,,,1.8,1.0,1.5",
        "GPRMC,161230.487,A,3723.2476,N,12158.3417,W,0.13,309.62,151126,,",
        "GPGGA,161231.487,3723.2476,N,12158.3417,W,1,07,1.0,9.0,M,,,,0000",
    ],
    "garmin_gps18x_rmc_only": [  # Garmin GPS 18x set to RMC + proprietary PGRME only (NMEA 2.3)
        "GPRMC,225446,A,4916.45,N,12311.12,W,000.5,054.7,151126,020.3,E,A",
        "PGRME,15.0,M,45.0,M,25.0,M",
        "GPRMC,225447,A,4916.46,N,12311.13,W,000.5,054.7,151126,020.3,E,A",
        "PGRME,15.0,M,45.0,M,25.0,M",
        "GPRMC,225448,V,4916.46,N,12311.13,W,000.5,054.7,151126,020.3,E,N",  # lost fix: refused
    ],
    "beidou_only_gga_short": [  # BeiDou-only module (BD talker), GGA drops the station-id field, no RMC date
        "BDGGA,111920.00,2232.6066,N,11404.8184,E,1,09,1.10,51.2,M,-2.3,M,",
        "BDGSA,A,3,201,202,203,206,207,209,210,212,214,,,,2.1,1.1,1.7",
        "BDRMC,111920.00,A,2232.6066,N,11404.8184,E,0.45,301.03,151126,,,A",
        "BDGGA,111921.00,2232.6068,N,11404.8186,E,1,09,1.10,51.2,M,-2.3,M,",
        "BDGSA,A,3,201,202,203,206,207,209,210,212,214,,,,2.1,1.1,1.7",
        "BDRMC,111921.00,A,2232.6068,N,11404.8186,E,0.45,301.03,151126,,,A",
        "GBGGA,111922.00,2232.6070,N,11404.8188,E,1,03,1.10,51.2,M,-2.3,M,",  # 3 satellites, 3D: refused
        "BDGSA,A,3,201,202,203,,,,,,,,,,2.1,1.1,1.7",
        "GBRMC,111922.00,A,2232.6070,N,11404.8188,E,0.45,301.03,151126,,,A",
        "GBGGA,111923.00,2232.6070,N,11404.8188,E,1,09,1.10,51.2,M,-2.3,M,",
    ],
    "septentrio_mosaic_nmea41_gq": [  # Septentrio mosaic (NMEA 4.1, QZSS GQ talker), RTK qualities 4/5
        "GNGGA,124500.00,5050.5321234,N,00441.7788123,E,4,24,0.6,105.234,M,47.300,M,1.2,0000",
        "GNRMC,124500.00,A,5050.5321234,N,00441.7788123,E,0.0,0.0,151126,,,R,V",
        "GQGSA,A,3,193,194,,,,,,,,,,,1.0,0.6,0.8,5",
        "GNGGA,124501.00,5050.5321240,N,00441.7788130,E,5,24,0.6,105.234,M,47.300,M,1.2,0000",
        "GNRMC,124501.00,A,5050.5321240,N,00441.7788130,E,0.0,0.0,151126,,,F,V",
        "GQGSA,A,3,193,194,,,,,,,,,,,1.0,0.6,0.8,5",
        "GNGGA,124502.00,5050.5321240,N,00441.7788130,E,8,24,0.6,105.234,M,47.300,M,1.2,0000",  # simulator
        "GNRMC,124502.00,A,5050.5321240,N,00441.7788130,E,0.0,0.0,151126,,,S,V",
        "GQGSA,A,3,193,194,,,,,,,,,,,1.0,0.6,0.8,5",
        "GNGGA,124503.00,5050.5321240,N,00441.7788130,E,4,24,0.6,105.234,M,47.300,M,1.2,0000",
    ],
    "novatel_oem7_gl_ga_old_date": [  # NovAtel OEM7 GPGGA + GLGSA/GAGSA; an old unit reporting a 1024-week-old date
        "GPGGA,134658.00,5106.9792,N,11402.3003,W,2,09,1.0,1048.47,M,-16.27,M,08,AAAA",
        "GLGSA,A,3,66,67,,,,,,,,,,,1.8,1.0,1.5",
        "GAGSA,A,3,11,12,,,,,,,,,,,1.8,1.0,1.5",
        "GPRMC,134658.00,A,5106.9792,N,11402.3003,W,0.0,0.0,020407,,,D",  # 2007-04-02 = 2026-11-17 - 1024 weeks
        "GPGGA,134659.00,5106.9792,N,11402.3003,W,2,09,1.0,1048.47,M,-16.27,M,08,AAAA",
        "GLGSA,A,3,66,67,,,,,,,,,,,1.8,1.0,1.5",
        "GAGSA,A,3,11,12,,,,,,,,,,,1.8,1.0,1.5",
        "GPRMC,134659.00,A,5106.9792,N,11402.3003,W,0.0,0.0,020407,,,D",
        "GPGGA,134700.00,5106.9792,N,11402.3003,W,2,09,1.0,1048.47,M,-16.27,M,08,AAAA",
    ],
}
# (family, time of day) of the epochs that must give a fix; others must not
VALID = {
    "ublox_m8_nmea41": ["083559.00", "083600.00"],
    "quectel_l76_nmea30": ["013732.000", "013733.000"],
    "skytraq_venus8_long_gga": ["060932.448", "060933.448"],
    "sirf_iv_nmea22": ["161229.487", "161230.487"],
    "garmin_gps18x_rmc_only": ["225446", "225447"],
    "beidou_only_gga_short": ["111920.00", "111921.00"],
    "septentrio_mosaic_nmea41_gq": ["124500.00", "124501.00"],
    "novatel_oem7_gl_ga_old_date": ["134658.00", "134659.00"],
}
ROLLOVER_DAYS = 7168


def line(body: str) -> str:
    pre, _, b = body.rpartition("$")
    cs = reduce(lambda a, c: a ^ ord(c), b, 0)
    return f"{pre}${b}*{cs:02X}"


def main() -> None:
    out, expected = [], {}
    for fam, bodies in FAMILIES.items():
        out.append(f"# {fam}")
        exp = []
        for b in bodies:
            ln = line(b)
            out.append(ln)
            s = ln[ln.rindex("$"):]
            msg = pynmea2.parse(s, check=True)
            if isinstance(msg, pynmea2.RMC) and msg.timestamp is not None:
                tod = ln.split(",")[1]
                if tod in VALID[fam]:
                    days = calendar.timegm(msg.datestamp.timetuple()) // 86400
                    if days < 20000:
                        days += ROLLOVER_DAYS
                    t = msg.timestamp
                    exp.append([days * 86400 + t.hour * 3600 + t.minute * 60 + t.second,
                                round(msg.latitude * 1e7), round(msg.longitude * 1e7)])
        expected[fam] = exp
    (HERE / "receivers.nmea").write_bytes(("\r\n".join(out) + "\r\n").encode("latin-1"))
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
