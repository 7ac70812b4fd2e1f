"""Run reports: what the deployment did against the world it saw, as PNG figures and one HTML page.

- space-time diagram per carriageway: road position (x) against time (y) of every beacon's lamps
  (dark, contour, guidance, anti-rear-end yellow, red tail, section alarm), the vehicles' paths and the
  fog (visibility contours at 200/100/50 m);
- signs: the limit each sign showed against the Art. 81 limit the visibility on its stretch required;
- patrols: true track against the positions the trackers reported;
- a safety summary: vehicle-seconds in fog without a red post behind, time from fog onset to a lawful
  signed limit per sign, seconds a sign showed more than the law allowed (all, and those later than
  LAWFUL_WITHIN_S after the visibility required the limit).
"""
from __future__ import annotations

import html
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from sim.world.inprocess_devices import ALARM, CONTOUR, DARK, GUIDANCE, RED, SAFE, YELLOW  # noqa: E402
from sim.world.engine import LAWFUL_WITHIN_S  # noqa: E402

LAMP_COLORS = {DARK: "#f4f4f4", CONTOUR: "#fff3b0", GUIDANCE: "#f6c343", YELLOW: "#e69500", RED: "#d62728",
               ALARM: "#7b2cbf", SAFE: "#9e9e9e"}
LAMP_NAMES = {DARK: "standby (dark)", CONTOUR: "contour", GUIDANCE: "guidance", YELLOW: "anti-rear-end",
              RED: "red tail", ALARM: "section alarm", SAFE: "no meter yet (safe mode)"}


def _t_axis(tl) -> tuple[list[float], str, float]:
    span = tl.t[-1] if tl.t else 0
    if span > 1800:
        return [t / 60 for t in tl.t], "time (min)", 60.0
    return list(tl.t), "time (s)", 1.0


def space_time(w, path: Path) -> Path | None:
    tl = w.timeline
    keys = [k for k in tl.lamps if tl.lamps[k]]
    if not keys or not tl.t:
        return None
    keys = sorted(keys, key=lambda k: (k[0], -k[1]))[:4]
    fig, axes = plt.subplots(1, len(keys), figsize=(7 * len(keys), 7), squeeze=False, sharey=True)
    cmap = ListedColormap([LAMP_COLORS[i] for i in range(7)])
    norm = BoundaryNorm([i - 0.5 for i in range(8)], 7)
    ts, tlabel, tdiv = _t_axis(tl)
    for ax, key in zip(axes[0], keys, strict=False):
        road, d = key
        xs, bs = w.posts[key]
        km0 = w.sc.roads[road].km0
        kms = [km0 + x / 1000 for x in xs]
        rows = tl.lamps[key]
        ax.imshow([list(r) for r in rows], aspect="auto", origin="lower", cmap=cmap, norm=norm, interpolation="nearest",
                  extent=(kms[0], kms[-1], ts[0], ts[-1]))
        # fog: visibility contours over the same plane
        nx = 120
        gx = [xs[0] + (xs[-1] - xs[0]) * i / (nx - 1) for i in range(nx)]
        step = max(1, len(tl.t) // 150)
        gt = tl.t[::step]
        vis = [[w.weather.visibility(road, x, t) for x in gx] for t in gt]
        cs = ax.contour([km0 + x / 1000 for x in gx], [t / tdiv for t in gt], vis, levels=[50, 100, 200],
                        colors=["#222222", "#555555", "#888888"], linewidths=[1.6, 1.2, 0.9], linestyles="--")
        ax.clabel(cs, fmt=lambda v: f"{v:.0f} m", fontsize=8)
        # vehicles on this carriageway inside the beaconed stretch
        px, py = [], []
        for t, cars in zip(ts, tl.cars, strict=False):
            for r, cd, s, _v in cars:
                if r == road and cd == d and xs[0] <= s <= xs[-1]:
                    px.append(km0 + s / 1000)
                    py.append(t)
        ax.scatter(px, py, s=2.5, c="#000000", alpha=0.8, linewidths=0, zorder=3)
        ax.set_title(f"{road} {'with' if d > 0 else 'against'} the km markers (side {'R' if d > 0 else 'L'})")
        ax.set_xlabel("road position (km)")
        if d < 0:
            ax.invert_xaxis()  # traffic runs left to right on both panels
    axes[0][0].set_ylabel(tlabel)
    handles = [Patch(color=LAMP_COLORS[i], label=LAMP_NAMES[i]) for i in (DARK, CONTOUR, GUIDANCE, YELLOW, RED, ALARM, SAFE)]
    handles.append(plt.Line2D([], [], color="#1f3b73", marker="o", ls="", ms=3, label="vehicles"))
    handles.append(plt.Line2D([], [], color="#222222", ls="--", label="fog: visibility 50/100/200 m"))
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=9, frameon=False)
    fig.suptitle(f"{w.sc.name}: beacon lamps, vehicles and fog over time (traffic rides upwards in time, left to right)")
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    fig.savefig(path, dpi=140)
    plt.close(fig)
    return path


def signs_plot(w, path: Path) -> Path | None:
    tl = w.timeline
    if not tl.signs or not tl.t:
        return None
    ids = sorted(tl.signs, key=lambda i: (w.sign_by_id[i].spec.road, w.sign_by_id[i].spec.km))[:10]
    fig, axes = plt.subplots(len(ids), 1, figsize=(11, 2.2 * len(ids) + 0.6), squeeze=False, sharex=True)
    ts, tlabel, _ = _t_axis(tl)
    for ax, sid in zip(axes[:, 0], ids, strict=False):
        shown = [s if s is not None else math.nan for s, _need in tl.signs[sid]]
        need = [n for _s, n in tl.signs[sid]]
        ax.fill_between(ts, need, 130, step="post", color="#d62728", alpha=0.08, label="above the lawful limit")
        ax.step(ts, need, where="post", color="#d62728", ls="--", lw=1.2, label="Art. 81 limit for the visibility")
        ax.step(ts, shown, where="post", color="#1f3b73", lw=2, label="limit shown (gap = blank)")
        sp = w.sign_by_id[sid].spec
        ax.set_ylabel("km/h")
        ax.set_ylim(0, 130)
        ax.set_title(f"{sid} at {sp.road} km {sp.km:g}", fontsize=10, loc="left")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="lower left", fontsize=8, ncol=3)
    axes[-1][0].set_xlabel(tlabel)
    fig.suptitle(f"{w.sc.name}: signed limits against what the visibility required")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def trackers_plot(w, path: Path) -> Path | None:
    tl = w.timeline
    if not w.trackers:
        return None
    fig, ax = plt.subplots(figsize=(11, 7))
    for rid, pl in w.sc.roads.items():
        ax.plot([lo for _la, lo in pl.latlon], [la for la, _lo in pl.latlon], color="#cccccc", lw=5, zorder=0)
        ax.annotate(rid, (pl.latlon[0][1], pl.latlon[0][0]), fontsize=8, color="#777777")
    cmap = plt.get_cmap("tab10")
    for i, tr in enumerate(w.trackers[:20]):
        c = cmap(i % 10)
        truth = tl.truth[tr.id]
        ax.plot([p[1] for p in truth], [p[0] for p in truth], color=c, lw=1, alpha=0.7)
        ax.scatter([r[2] for r in tr.reports], [r[1] for r in tr.reports], s=10, color=c, edgecolors="black",
                   linewidths=0.3, label=f"{tr.id} ({len(tr.reports)} reports)", zorder=3)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect(1 / math.cos(math.radians(w.sc.proj.lat0)))
    ax.legend(fontsize=7, ncol=2, loc="best")
    ax.set_title(f"{w.sc.name}: patrol tracks (lines: truth) and the positions the trackers reported (dots)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tracker_error_m(w) -> float | None:
    """Largest distance between a reported position and the truth at that moment (metres)."""
    from host_tools.deployment.geo import haversine_m

    worst = None
    for tr in w.trackers:
        for t, lat, lon in tr.reports:
            tt = tr.patrol.truth(t, w.sc.roads)
            d = haversine_m(lat, lon, tt.lat, tt.lon)
            worst = d if worst is None or d > worst else worst
    return worst


def summary(w) -> dict:
    m = w.metrics
    signs = {}
    for sid, st in w.sign_lawful.items():
        delay = None if st["onset"] is None or st["lawful_at"] is None else round(st["lawful_at"] - st["onset"], 1)
        signs[sid] = {"fog_onset_s": st["onset"], "lawful_at_s": st["lawful_at"], "onset_to_lawful_s": delay,
                      "unlawful_s": round(st["unlawful_s"], 1), "unlawful_late_s": round(st["late_s"], 1)}
    err = tracker_error_m(w)
    return {"scenario": w.sc.name, "seed": w.seed, "sim_s": round(w.t, 1),
            "vehicle_s_in_fog": round(m["fog_vehicle_s"], 1),
            "vehicle_s_in_fog_without_red_tail": round(m["fog_unprotected_s"], 1),
            "detections": m["detections"], "vehicles": w.traffic.count if w.traffic else 0,
            "messages": m["messages"], "sign_commands": m["commands"], "signs": signs,
            "tracker_reports": sum(len(t.reports) for t in w.trackers),
            "tracker_max_error_m": None if err is None else round(err, 1)}


def write(w, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = [p for p in (space_time(w, out / "space_time.png"), signs_plot(w, out / "signs.png"),
                        trackers_plot(w, out / "trackers.png")) if p]
    s = summary(w)
    fog_s, bare = s["vehicle_s_in_fog"], s["vehicle_s_in_fog_without_red_tail"]
    pct = f" ({100 * bare / fog_s:.1f} %)" if fog_s else ""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(v['fog_onset_s'])}</td><td>{_fmt(v['lawful_at_s'])}</td>"
        f"<td><b>{_fmt(v['onset_to_lawful_s'])}</b></td><td>{_fmt(v['unlawful_s'])}</td>"
        f"<td><b>{_fmt(v['unlawful_late_s'])}</b></td></tr>"
        for k, v in s["signs"].items())
    imgs = "".join(f'<figure><img src="{p.name}" alt="{p.stem}"><figcaption>{p.stem}</figcaption></figure>' for p in figs)
    page = f"""<!doctype html><meta charset="utf-8"><title>roadedge sim report: {html.escape(w.sc.name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1500px}}td,th{{padding:.2em .8em;text-align:right}}
th{{background:#eee}}img{{max-width:100%;border:1px solid #ccc}}.k{{font-size:1.4em}}</style>
<h1>{html.escape(w.sc.name)}: simulated {s['sim_s']:.0f} s (seed {s['seed']})</h1>
<h2>Safety</h2>
<p class="k">Vehicles drove <b>{bare:.0f} s</b> in fog (visibility &lt; 200 m) inside the beaconed sections
without a red post behind them, out of {fog_s:.0f} vehicle-seconds in fog{pct}.</p>
<table><tr><th>sign</th><th>fog onset (s)</th><th>lawful limit shown at (s)</th><th>onset to lawful (s)</th>
<th>seconds above the lawful limit</th><th>of which later than {LAWFUL_WITHIN_S:.0f} s after the visibility required
it</th></tr>{rows}</table>
<p>The zone controllers are the shipped <code>roadedge controller</code> (host_tools.controller) on the simulated
clock. A sign may lag the visibility by the confirmation time, the meter's poll and one command round trip
(docs/fog-control.md); the last column counts only what is later than that: it should be 0.</p>
<p>{s['vehicles']} vehicles, {s['detections']} detections, {s['sign_commands']} signed commands,
{s['messages']} device messages; {s['tracker_reports']} patrol reports, largest error against the truth
{_fmt(s['tracker_max_error_m'])} m.</p>
<h2>Figures</h2>{imgs}
"""
    (out / "index.html").write_text(page, encoding="utf-8")
    import json

    (out / "summary.json").write_text(json.dumps(s, indent=1))
    return out / "index.html"


def _fmt(v) -> str:
    return "–" if v is None else (f"{v:.0f}" if isinstance(v, float) else str(v))
