#!/usr/bin/env python3
"""bench/report.py OUT_DIR DOCS_DIR - turn one bench/run.sh result directory into
docs/BENCHMARKS.md and the gnuplot PNGs under docs/bench/. Every figure in the document comes
from the JSON files chatbench wrote; nothing is typed in by hand except bench/notes.md, which is
appended verbatim (analysis that needs a human)."""
import glob
import json
import os
import subprocess
import sys

SYSTEMS = ["chatd", "ceiling", "ceilingeq", "ws", "socketio", "nats", "mosquitto"]
TITLES = {"chatd": "chatd", "ceiling": "ceiling (bench/peers/ceiling)",
          "ceilingeq": "ceiling, chatd-sized frames (239 B)", "ws": "Node ws",
          "socketio": "socket.io", "nats": "nats-server (WebSocket)",
          "mosquitto": "Mosquitto (WebSocket)"}


def load(out):
    runs = {}
    for path in glob.glob(os.path.join(out, "*.json")):
        name = os.path.basename(path)[:-5]
        if name == "machine":
            continue
        try:
            runs[name] = json.load(open(path))
        except (OSError, ValueError):
            pass
    return runs


def text(path):
    try:
        return open(path).read().strip()
    except OSError:
        return ""


def passes(d):
    exp = d.get("expected", 0)
    return (d["latency_ms"]["p99"] < 50 and exp > 0 and d["drops"] <= 0.01 * exp
            and d["conns_failed"] == 0)


def sweep(runs, sys_):
    pts = [d for n, d in runs.items() if n.startswith(sys_ + "__fanout__")]
    return sorted(pts, key=lambda d: d["params"]["rate_per_sender"])


def best(runs, sys_):
    ok = [d for d in sweep(runs, sys_) if passes(d)]
    return max(ok, key=lambda d: d["deliveries_per_s"]) if ok else None


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float) and digits:
        return f"{v:,.{digits}f}"
    return f"{v:,.0f}"


def ms(v):
    return "-" if v is None else f"{v:.2f}"


def plot(out, docs, runs, systems):
    bdir = os.path.join(docs, "bench")
    os.makedirs(bdir, exist_ok=True)
    files = []
    for s in systems:
        pts = sweep(runs, s)
        if not pts:
            continue
        dat = os.path.join(out, f"{s}.dat")
        with open(dat, "w") as f:
            for d in pts:
                if d["latency_ms"]["count"] == 0:
                    continue
                l = d["latency_ms"]
                f.write(f'{d["deliveries_per_s"]} {l["p50"]} {l["p90"]} {l["p99"]} {l["p999"]}\n')
        files.append((s, dat))
    if not files:
        return []
    made = []
    gp = [
        "set terminal pngcairo size 1000,620 font 'sans,10'" if has_cairo() else "set terminal png size 1000,620",
        f"set output '{os.path.join(bdir, 'latency-p99.png')}'",
        "set title 'p99 end-to-end latency vs delivery rate (1 sender, 1,000 receivers, 100-byte bodies)'",
        "set logscale xy", "set grid", "set key left top",
        "set xlabel 'deliveries per second'", "set ylabel 'p99 latency (ms)'",
        "set arrow from graph 0, first 50 to graph 1, first 50 nohead dt 2",
        "plot " + ", ".join(f"'{dat}' using 1:4 with linespoints title '{TITLES[s]}'"
                            for s, dat in files),
    ]
    made.append("latency-p99.png")
    for s, dat in files:
        gp += [
            "unset arrow",
            f"set output '{os.path.join(bdir, 'latency-' + s + '.png')}'",
            f"set title '{TITLES[s]}: latency percentiles vs delivery rate'",
            "set ylabel 'latency (ms)'",
            f"plot '{dat}' using 1:2 with linespoints title 'p50', '' using 1:3 with linespoints title 'p90',"
            " '' using 1:4 with linespoints title 'p99', '' using 1:5 with linespoints title 'p99.9'",
        ]
        made.append(f"latency-{s}.png")
    mem = [(s, runs[f"{s}__connections"].get("server_bytes_per_conn"))
           for s in systems if f"{s}__connections" in runs]
    mem = [(s, v) for s, v in mem if v is not None]
    if mem:
        mdat = os.path.join(out, "memory.dat")
        with open(mdat, "w") as f:
            for i, (s, v) in enumerate(mem):
                f.write(f'{i} "{s}" {v}\n')
        gp += [
            "unset logscale", "unset arrow",
            f"set output '{os.path.join(bdir, 'memory.png')}'",
            "set title 'server RSS per idle connection (bytes)'",
            "set style fill solid 0.6", "set boxwidth 0.6", "set yrange [0:*]", "set xrange [-0.5:*]",
            "set xlabel ''", "set ylabel 'bytes per connection'", "unset key",
            f"plot '{mdat}' using 1:3:xtic(2) with boxes, '' using 1:3:(sprintf('%.0f', $3)) with labels offset 0,1",
        ]
        made.append("memory.png")
    script = os.path.join(out, "plots.gp")
    open(script, "w").write("\n".join(gp) + "\n")
    r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write("gnuplot failed: " + r.stderr[-500:] + "\n")
        return []
    return made


def has_cairo():
    try:
        r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
        return "pngcairo" in (r.stdout + r.stderr)
    except OSError:
        return False


def main():
    out, docs = sys.argv[1], sys.argv[2]
    out = os.path.realpath(out)
    runs = load(out)
    m = json.load(open(os.path.join(out, "machine.json")))
    systems = [s for s in SYSTEMS if any(n.startswith(s + "__") for n in runs)
               or os.path.exists(os.path.join(out, s + "__skipped.txt"))]
    pngs = plot(out, docs, runs, systems)
    elapsed = text(os.path.join(out, "elapsed_seconds"))
    L = []
    L.append("# chatd benchmarks\n")
    L.append("Generated by `bench/run.sh" + (" --quick" if m.get("quick") else "") +
             f"` (results `bench/out/{m['stamp']}`, {elapsed} s). Do not edit the generated part by "
             "hand: rerun the script. The instrument (chatbench), the ceiling server and the peers "
             "live in `bench/`; see the end of this file for how they work.\n")
    L.append("## Machine and versions\n")
    L.append("| item | value |\n|---|---|")
    for k in ["cpu", "cores", "mem_kib", "kernel", "os", "nofile", "git", "chatd", "gcc", "node",
              "ws", "socketio", "nats", "mosquitto"]:
        L.append(f"| {k} | {m.get(k, '')} |")
    L.append("\nServers run pinned to CPU 0 (`taskset -c 0`), chatbench pinned to CPU 1 "
             "(`taskset -c 1`), one system at a time, each test on a fresh server process. Fanout: "
             "one sender, 1,000 receivers in one room, 100-byte bodies, open-loop sending at a fixed "
             "rate; latency is from the scheduled send time to the receiving read(), both "
             "CLOCK_MONOTONIC.\n")

    cont = text(os.path.join(out, "contention.txt"))
    if cont:
        L.append("Machine load just before each system's runs (from /proc/stat; anything well above "
                 "0 means other work shared the cores and the figures are pessimistic and noisy):\n")
        L.append("```\n" + cont + "\n```\n")

    # ---- summary
    L.append("## Summary\n")
    L.append("| system | max deliveries/s with p99 < 50 ms | p99 there (ms) | p99 at 100k/s (ms) | "
             "p50 at 100k/s (ms) | RSS per idle conn (bytes) | connections | connect rate (/s) | "
             "handshake p99 (ms) | load CPU at max |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    ceiling_best = best(runs, "ceiling")
    for s in systems:
        skip = text(os.path.join(out, s + "__skipped.txt"))
        if skip and not any(n.startswith(s + "__") for n in runs):
            L.append(f"| {TITLES[s]} | not run: {skip} | | | | | | | | |")
            continue
        b = best(runs, s)
        lat = runs.get(f"{s}__latency100k")
        c = runs.get(f"{s}__connections")
        L.append("| " + " | ".join([
            TITLES[s],
            fmt(b["deliveries_per_s"]) if b else "none passed",
            ms(b["latency_ms"]["p99"]) if b else "-",
            ms(lat["latency_ms"]["p99"]) if lat else "-",
            ms(lat["latency_ms"]["p50"]) if lat else "-",
            fmt(c.get("server_bytes_per_conn")) if c else "-",
            f'{c["conns_ok"]:,}/{c["params"]["conns"]:,}' if c else "-",
            fmt(c["connect_rate"]) if c else "-",
            ms(c["handshake_ms"]["p99"]) if c else "-",
            f'{b["load_cpu_share"]:.2f}' if b else "-",
        ]) + " |")
    L.append("")
    if ceiling_best:
        L.append("Fraction of the ceiling (max deliveries/s with p99 < 50 ms): " + ", ".join(
            f"{s} {best(runs, s)['deliveries_per_s'] / ceiling_best['deliveries_per_s'] * 100:.1f} %"
            for s in systems if s != "ceiling" and best(runs, s)) + ".\n")
    eq, cb_ = best(runs, "ceilingeq"), best(runs, "chatd")
    if eq and cb_:
        L.append("At equal bytes per delivery (the ceiling relaying frames as long as chatd's "
                 "`message` events, 239 B against 102 B), chatd reaches "
                 f"{cb_['deliveries_per_s'] / eq['deliveries_per_s'] * 100:.1f} % of the ceiling.\n")
    L.append("The sweep steps the sender's rate through a fixed list and stops at the first step "
             "that fails (p99 >= 50 ms, more than 1 % of deliveries missing, or a failed "
             "connection), so \"max\" is the highest passing step, not an interpolation. "
             "\"load CPU\" is chatbench's CPU time over the measured window on its one core, "
             "\"server CPU\" the server process's; \"CPU0/CPU1 busy\" are the whole cores from "
             "/proc/stat, which also count the softirq time of loopback TCP that no process is "
             "charged for. CPU1 near 1.0 means the load generator, not the server, may be the limit.\n")

    # ---- targets (chatd)
    L.append("## chatd against the targets of issue 6\n")
    cb = best(runs, "chatd")
    lat = runs.get("chatd__latency100k")
    c = runs.get("chatd__connections")
    rows = []
    if cb or "chatd__fanout__20" in runs or any(n.startswith("chatd__") for n in runs):
        v = cb["deliveries_per_s"] if cb else 0
        rows.append(("fanout >= 2,000,000 deliveries/s, p99 < 50 ms", fmt(v), v >= 2e6))
        if ceiling_best:
            frac = v / ceiling_best["deliveries_per_s"]
            rows.append(("fanout >= 75 % of the ceiling", f"{frac * 100:.1f} %", frac >= 0.75))
        if lat:
            p = lat["latency_ms"]["p99"]
            rows.append(("p99 < 5 ms at 100,000 deliveries/s", f"{p:.2f} ms", p < 5 and lat["drops"] == 0))
        if c and c.get("server_bytes_per_conn") is not None:
            b = c["server_bytes_per_conn"]
            rows.append((f"<= 1 KB RSS per idle connection ({c['conns_ok']:,} conns)", f"{b:.0f} B", b <= 1024))
        if c:
            rows.append(("connect rate >= 10,000/s", fmt(c["connect_rate"]), c["connect_rate"] >= 10000))
        dur = [d for n, d in runs.items() if n.startswith("chatd__durable__")]
        okd = [d for d in dur if d["ack_ms"]["p99"] < 20 and d["acked_in_window"] >= 0.99 * d["sent"] and d["sent"] > 0]
        if dur:
            bd = max(okd, key=lambda d: d["acked_per_s"]) if okd else None
            rows.append(("durable >= 100,000 acked msgs/s, ack p99 < 20 ms",
                         f'{bd["acked_per_s"]:,.0f}/s (p99 {bd["ack_ms"]["p99"]:.2f} ms)' if bd else "none passed",
                         bool(bd and bd["acked_per_s"] >= 100000)))
        h = runs.get("chatd__history")
        if h and "latest50_ms" in h:
            rows.append(("history latest-50 p99 < 1 ms", f'{h["latest50_ms"]["p99"]:.3f} ms', h["latest50_ms"]["p99"] < 1))
        st = runs.get("chatd__storm")
        if st and "storm_seconds" in st:
            rows.append((f'storm: {st["params"]["conns"]:,} resynced < 5 s, nothing missed or doubled',
                         f'{st["storm_seconds"]:.2f} s, {st["storm_ok"]:,} exact', st["storm_seconds"] < 5 and st["storm_ok"] == st["params"]["conns"]))
    if rows:
        L.append("| target | measured | met |\n|---|---|---|")
        for t, v, ok in rows:
            L.append(f"| {t} | {v} | {'yes' if ok else '**no**'} |")
        L.append("")
        L.append("Each row is this one run. This VM's figures move between runs (the ceiling's "
                 "too), so a target counts as met only if it holds across runs: the analysis at "
                 "the end of this file gives the ranges over the day's runs.\n")
    for prefix, title in [("chatd__durable__", "Durable writes, SQLite WAL synchronous=NORMAL"),
                          ("chatd-full__durable__", "Durable writes, SQLite WAL synchronous=FULL (the default)"),
                          ("ceiling__durable__", "The floor of durable writes: the ceiling acks, stores nothing")]:
        pts = sorted((d for n, d in runs.items() if n.startswith(prefix)),
                     key=lambda d: d["offered_msgs_per_s"])
        if not pts:
            continue
        L.append(f"### {title}\n")
        tick = pts[0]["params"].get("tick_us", 0)
        who = ("each in its own room" if prefix.startswith("chatd") else
               "on the ceiling's /ack: every frame answered to its sender with an ack of chatd's size, "
               "one write per connection per loop iteration, nothing stored")
        L.append(f'{pts[0]["params"]["senders"]} senders, {who}, 100-byte bodies, open loop'
                 + (f" (send timer tick {tick:.0f} us: the wait for the tick counts as latency)" if tick else "")
                 + "; ack latency from the scheduled send to the ack; acked msgs/s counts the acks that "
                 "arrived within the measured window (a backlog that drains afterwards does not count).\n")
        L.append("| offered msgs/s | acked msgs/s | ack p50 ms | ack p90 ms | ack p99 ms | ack max ms | "
                 "server CPU | load CPU |")
        L.append("|---|---|---|---|---|---|---|---|")
        for d in pts:
            a = d["ack_ms"]
            L.append("| " + " | ".join([fmt(d["offered_msgs_per_s"]), fmt(d["acked_per_s"]), ms(a["p50"]),
                                        ms(a["p90"]), ms(a["p99"]), ms(a["max"]),
                                        f'{d.get("server_cpu_share", 0):.2f}',
                                        f'{d["load_cpu_share"]:.2f}']) + " |")
        L.append("")
    mix = sorted((d for n, d in runs.items() if n.startswith("chatd__mix__")),
                 key=lambda d: d["offered_msgs_per_s"])
    if mix:
        p0 = mix[0]["params"]
        L.append("### Mix: small rooms, DMs, churn (real-chat shape)\n")
        L.append(f'{p0["users"]:,} users, one connection each, in {p0["group_rooms"]:,} group rooms '
                 f'(each user in {p0["rooms_per_user"]} of about {p0["room_size"]} members) and '
                 f'{p0["dm_rooms"]:,} DMs ({p0["dms_per_user"]} per user); {p0["senders"]:,} users '
                 f'({p0["senders_share"] * 100:.0f} %) send, together at the offered rate, each message '
                 f'to a random room of theirs, acked after commit; {p0["churn"]:.0f} connections/s are '
                 "reset and reconnect with `sync` from the last seq they saw. Delivery latency is from "
                 "the scheduled send to the receiving read() for live deliveries (those replayed by a "
                 "reconnect's sync are counted in `replayed`, not in the latency); every connection "
                 "checks each room's seqs arrive once and without gaps. Reconnect = reset to `synced`.\n")
        L.append("| offered msgs/s | acked msgs/s | deliveries/s | ack p50 ms | ack p99 ms | "
                 "delivery p50 ms | delivery p99 ms | drops | dups | gaps | replayed | reconnects | "
                 "reconnect p99 ms | server CPU | server us/msg | load CPU | ok |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for d in mix:
            L.append("| " + " | ".join([
                fmt(d["offered_msgs_per_s"]), fmt(d["acked_per_s"]), fmt(d["deliveries_per_s"]),
                ms(d["ack_ms"]["p50"]), ms(d["ack_ms"]["p99"]), ms(d["latency_ms"]["p50"]),
                ms(d["latency_ms"]["p99"]), fmt(d["drops"]), fmt(d["dups"]), fmt(d["gaps"]),
                fmt(d["replayed"]), fmt(d["reconnects"]), ms(d["reconnect_ms"]["p99"]),
                f'{d.get("server_cpu_share", 0):.2f}',
                f'{d["server_cpu_share"] * 1e6 / d["acked_per_s"]:.0f}'
                if d.get("server_cpu_share") and d["acked_per_s"] else "-",
                f'{d["load_cpu_share"]:.2f}', "yes" if d["ok"] else "no"]) + " |")
        L.append("")
        L.append("server us/msg: the server's CPU time over the window per acked message (all its "
                 "work: commit, fanout to about 4.4 connections, churn); less sensitive to other "
                 "load on the machine than the latencies. ok: nothing dropped, doubled or skipped, "
                 "every message acked, no failed connection or error.\n")
    for sc in ["durable", "history", "storm", "mix"]:
        if not any(n.startswith("chatd__" + sc) for n in runs):
            L.append(f"- `{sc}`: no result in this run (see bench/out/{m['stamp']}/logs/chatd__{sc}*.err).")
    L.append("")

    # ---- sweeps
    L.append("## Fanout sweeps\n")
    for s in systems:
        pts = sweep(runs, s)
        if not pts:
            continue
        L.append(f"### {TITLES[s]}\n")
        L.append("| msgs/s | deliveries/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | missing | dups | "
                 "load CPU | server CPU | CPU0 busy | CPU1 busy | frames/read | pass |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for d in pts:
            l = d["latency_ms"]
            L.append("| " + " | ".join([
                fmt(d["params"]["rate_per_sender"]), fmt(d["deliveries_per_s"]), ms(l["p50"]), ms(l["p90"]),
                ms(l["p99"]), ms(l["p999"]), ms(l["max"]), fmt(d["drops"]), fmt(d["dups"]),
                f'{d["load_cpu_share"]:.2f}', f'{d.get("server_cpu_share", 0):.2f}',
                f'{d["cpu0_busy"]:.2f}' if "cpu0_busy" in d else "-",
                f'{d["cpu1_busy"]:.2f}' if "cpu1_busy" in d else "-",
                f'{d["frames_per_read"]:.1f}', "yes" if passes(d) else "no"]) + " |")
        note = text(os.path.join(out, s + "__notes.txt"))
        if note:
            L.append("\n" + note)
        L.append("")
    if pngs:
        L.append("## Plots\n")
        for p in pngs:
            L.append(f"![{p}](bench/{p})\n")

    # ---- chatbench capacity
    cap = [d for n, d in runs.items() if n.startswith("ceiling__fanout__")]
    if cap:
        top = max(cap, key=lambda d: d["recv_frames_per_load_cpu_s"])
        L.append("## Is chatbench fast enough?\n")
        L.append(f"Against the ceiling, chatbench received {top['deliveries_per_s']:,.0f} frames/s "
                 f"using {top['load_cpu_share']:.2f} of its core, i.e. "
                 f"{top['recv_frames_per_load_cpu_s']:,.0f} frames per CPU-second "
                 f"({top['frames_per_read']:.1f} frames per read()). The issue asks for at least "
                 "3,000,000 frames/s on one core.\n")

    # ---- commands
    L.append("## Exact commands\n")
    L.append("```")
    L.append(text(os.path.join(out, "commands.txt")))
    L.append("```\n")
    notes = text(os.path.join(os.path.dirname(os.path.realpath(__file__)), "notes.md"))
    if notes:
        L.append(notes + "\n")
    # The Soak section (bench/soak.sh writes bench/soak.md) survives a regeneration of this file.
    soak = text(os.path.join(os.path.dirname(os.path.realpath(__file__)), "soak.md"))
    if soak:
        L.append(soak + "\n")
    # So does the Cluster section (bench/cluster.sh writes bench/cluster.md).
    cluster = text(os.path.join(os.path.dirname(os.path.realpath(__file__)), "cluster.md"))
    if cluster:
        L.append(cluster + "\n")
    # And the Event stream section (bench/sinks.sh's figures, bench/sinks.md).
    sinks = text(os.path.join(os.path.dirname(os.path.realpath(__file__)), "sinks.md"))
    if sinks:
        L.append(sinks + "\n")
    # And the Search section (bench/search.sh's figures, kept in bench/search.md).
    search = text(os.path.join(os.path.dirname(os.path.realpath(__file__)), "search.md"))
    if search:
        L.append(search + "\n")
    os.makedirs(docs, exist_ok=True)
    open(os.path.join(docs, "BENCHMARKS.md"), "w").write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
