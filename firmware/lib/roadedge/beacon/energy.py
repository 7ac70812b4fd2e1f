# Battery / solar policy: pure. Dims the lamps before the battery fails.
#
# States by battery voltage (12 V lead-acid/LiFePO4 pack defaults):
#   ok        v >= dim_v                brightness factor 1.0
#   dim       cutoff_v < v < dim_v      factor falls linearly to min_factor
#   cutoff    v <= cutoff_v             lamps off, protect the battery
# Leaving a worse state needs recover_v more volts (hysteresis) so a sagging
# battery under lamp load does not flap.

DEFAULTS = {
    "dim_v": 12.0,
    "cutoff_v": 11.0,
    "recover_v": 0.3,
    "min_factor": 0.25,
    # ADC scale: volts at the battery for a full-scale reading (divider)
    "batt_full_scale_v": 16.5,
    "solar_full_scale_v": 25.0,  # optional "solar" ADC, reported in telemetry
}

OK = "ok"
DIM = "dim"
CUTOFF = "cutoff"


def adc_to_volts(cfg, u16):
    return u16 * cfg.get("batt_full_scale_v", DEFAULTS["batt_full_scale_v"]) / 65535


class Energy:
    def __init__(self, cfg=None):
        c = dict(DEFAULTS)
        c.update(cfg or {})
        if not c["cutoff_v"] < c["dim_v"]:
            raise ValueError("cutoff_v: must be below dim_v")
        self.cfg = c
        self.state = OK
        self.volts = None
        self.factor = 1.0

    def update(self, volts):
        """Feed a battery voltage; return (state, brightness factor)."""
        c = self.cfg
        self.volts = volts
        st = self.state
        dim_v, cut_v, r = c["dim_v"], c["cutoff_v"], c["recover_v"]
        if st == CUTOFF:
            if volts >= cut_v + r:
                st = DIM
        if st == DIM and volts >= dim_v + r:
            st = OK
        if volts <= cut_v:
            st = CUTOFF
        elif volts < dim_v and st == OK:
            st = DIM
        self.state = st
        if st == OK:
            f = 1.0
        elif st == CUTOFF:
            f = 0.0
        else:
            span = dim_v - cut_v
            x = (min(volts, dim_v) - cut_v) / span
            mf = c["min_factor"]
            f = mf + (1.0 - mf) * max(0.0, x)
        self.factor = f
        return st, f
