"""`roadedge sim attach`: a real board on a serial port in place of one simulated device.

    roadedge sim attach --serial /dev/ttyUSB0 --device trk-002 --scenario sim/scenarios/demo.json \\
        --broker mqtt://127.0.0.1:1883
    roadedge sim attach --serial /dev/ttyUSB0 --device bcn-f1-r040 --detector-pin D5 ...   (beacon on a bench)

The whole scenario runs on the world engine in real time (`--speed` to compress it); the named device is
taken out of the simulation and the board gets its sensor inputs instead:
- a tracker's GNSS UART receives the NMEA its virtual receiver emits for the unit's patrol (pyserial);
- a beacon's meter UART is answered by the virtual visibility meter with the fog at its post
  (the meter protocol, polled by the board), and each simulated vehicle passing the post pulses the
  detector input through adafruit-blinka GPIO (`--detector-pin`, a Linux SBC or an FT232H);
The board is observed over MQTT: its reports are checked against the ground truth (tracker positions)
or the world (beacon modes against the visibility), and a summary is printed. Exit status 0 when the
board answered and agreed with the world.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from roadedge import wire


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--serial", required=True, help="the board's UART (e.g. /dev/ttyUSB0, or a pty)")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--device", required=True, help="the scenario device the board stands in for")
    p.add_argument("--scenario", required=True, help="scenario file")
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="the broker the board talks to")
    p.add_argument("--user", help="MQTT user for observing the board")
    p.add_argument("--password", help="MQTT password")
    p.add_argument("--detector-pin", help="blinka pin name wired to a beacon's detector input (e.g. D5, C0)")
    p.add_argument("--duration", type=float, default=60.0, help="wall-clock seconds to run")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--max-error-m", type=float, default=50.0, help="tracker: largest accepted report error")


class SerialHW:
    """The bits of a sim.hw.DeviceHW that peripherals use (`uart_send`, `on_uart`), on a pyserial port:
    the same virtual meter and GNSS talk to a real board's UART."""

    def __init__(self, port) -> None:
        self.port = port
        self.cbs: list = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._reader, daemon=True).start()

    def uart_send(self, _name: str, data: bytes) -> None:
        with self.lock:
            self.port.write(data)

    def on_uart(self, _name: str, cb) -> None:
        self.cbs.append(cb)

    def _reader(self) -> None:
        while not self.closed:
            try:
                data = self.port.read(256)
            except Exception:  # port gone (board unplugged): stop reading, the summary will say it
                return
            if data:
                for cb in self.cbs:
                    cb(data)


class DetectorPin:
    """A beacon's detector input driven through adafruit-blinka (imported only when asked for)."""

    def __init__(self, pin_name: str, pulse_s: float = 0.05) -> None:
        try:
            import board  # type: ignore[import-not-found]
            import digitalio  # type: ignore[import-not-found]
        except (ImportError, NotImplementedError, RuntimeError) as e:
            raise SystemExit(f"attach: --detector-pin needs adafruit-blinka on a Linux SBC or an FT232H ({e})") from e
        self.io = digitalio.DigitalInOut(getattr(board, pin_name))
        self.io.direction = digitalio.Direction.OUTPUT
        self.io.value = False
        self.pulse_s = pulse_s
        self.pulses = 0
        self.level = False  # what we drive (a mock pin reads back its own pattern)

    def _set(self, v: bool) -> None:
        self.level = v
        self.io.value = v

    def pulse(self) -> None:
        self.pulses += 1
        self._set(True)
        threading.Timer(self.pulse_s, self._set, (False,)).start()


def run(args) -> int:
    import paho.mqtt.client as mqtt
    import serial

    from host_tools.deployment.geo import haversine_m
    from host_tools.deployment.scenario import ScenarioError, load
    from sim.world import World

    try:
        sc = load(args.scenario)
    except ScenarioError as e:
        print(e, file=sys.stderr)
        return 2
    w = World(sc, epoch_unix=int(time.time()))
    trk = w.tracker_by_id.get(args.device)
    bcn = w.by_id.get(args.device)
    if trk is None and bcn is None:
        print(f"attach: {args.device} is not a tracker or beacon of {sc.name}", file=sys.stderr)
        return 2
    try:
        port = serial.serial_for_url(args.serial, baudrate=args.baud, timeout=0.2)
    except (serial.SerialException, ValueError) as e:
        print(f"attach: cannot open {args.serial}: {e}", file=sys.stderr)
        return 2
    hw = SerialHW(port)
    seen: list[dict] = []
    errors: list[float] = []
    modes: list[tuple[float, str, float]] = []
    lock = threading.Lock()

    if trk is not None:
        def second(t: float, tr=trk) -> None:  # the board gets the NMEA instead of the in-process decoder
            for line in tr.gnss.epoch(t):
                hw.uart_send("gnss", (line + "\r\n").encode())
        trk.second = second  # type: ignore[method-assign]
        topic = wire.location_topic(args.device)
    else:
        from sim.peripherals.vis_meter import VisibilityMeter

        w.beacons.remove(bcn)  # its posts entry stays: passing vehicles reach the detector below
        VisibilityMeter(hw, lambda _t, b=bcn: w.weather.visibility(b.spec.road, b.s, w.t))
        det = DetectorPin(args.detector_pin) if args.detector_pin else None
        if det is not None:
            bcn.detect = lambda _ms, _kmh, d=det: d.pulse()  # type: ignore[method-assign]
        topic = wire.topic(args.device, wire.STATE)

    def on_message(_c, _u, m) -> None:
        try:
            obj = json.loads(m.payload)
        except ValueError:
            return
        with lock:
            if trk is not None and obj.get("_type") == "location":
                t = obj["tst"] - w.epoch
                truth = trk.patrol.truth(t, sc.roads)
                err = haversine_m(obj["lat"], obj["lon"], truth.lat, truth.lon)
                errors.append(err)
                seen.append(obj)
                print(f"  report {len(seen)}: {obj['lat']:.6f},{obj['lon']:.6f} at t={t:.0f} s, {err:.1f} m from the "
                      f"truth ({obj.get('why')})", flush=True)
            elif bcn is not None and "mode" in obj:
                vis = w.weather.visibility(bcn.spec.road, bcn.s, w.t)
                modes.append((w.t, obj["mode"], vis))
                seen.append(obj)
                print(f"  state: {obj['mode']} (board reads {obj.get('vis_m')} m, world {vis:.0f} m)", flush=True)

    url = args.broker.split("://", 1)[1]
    host, _, p = url.rsplit("@", 1)[-1].partition(":")
    # with an account, its name is the one client id the broker accepts for it
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.user or f"roadedge-hil-{args.device}")
    if args.user:
        client.username_pw_set(args.user, args.password)
    client.on_connect = lambda c, *_a: c.subscribe(topic, 1)
    client.on_message = on_message
    client.connect(host, int(p or 1883), 30)
    client.loop_start()
    print(f"attach: {args.device} on {args.serial} in {sc.name} at {args.speed:g}x; watching {topic}", flush=True)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < args.duration:
            w.step()
            ahead = w.t / args.speed - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    except KeyboardInterrupt:
        pass
    finally:
        client.loop_stop()
        client.disconnect()
        hw.closed = True
        port.close()
    with lock:
        if trk is not None:
            worst = max(errors) if errors else None
            ok = bool(errors) and worst is not None and worst <= args.max_error_m
            print(f"attach: {len(errors)} reports from the board, largest error {worst if worst is None else round(worst, 1)} m"
                  f" -> {'agrees with the ground truth' if ok else 'DOES NOT agree'}")
        else:
            ok = bool(modes)
            print(f"attach: {len(modes)} state changes from the board" + (f", last {modes[-1][1]}" if modes else ""))
    return 0 if ok else 1
