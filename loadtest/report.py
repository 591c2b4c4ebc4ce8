#!/usr/bin/env python3
"""Turns loadtest/run's raw measurements into latest.md, latest.json and a gnuplot script for
latest.png. Exits 1 if any scenario had errors in any round, or its idle clients failed (their RSS
is then missing: null in the raw file, "—" in the table). Standard library only.

`report.py min-saturation RAW` prints the lowest median saturation throughput of any proxy in
RAW, from which loadtest/run sets the fixed rate.

The raw measurements come in rounds (every scenario once per round); the tables show the median
over the rounds of each figure, and each ratio is the median of the per-round ratios, switchyard
and its peer taken from the same round."""

import argparse
import glob
import json
import os
import re
import statistics
import sys

SCENARIOS = ["direct", "nginx", "haproxy", "switchyard", "sw-poll", "ha+2sw"]
# switchyard with --idle-poll-us: reported beside the others, compared in a section of its own, and
# never what the targets are checked on (it buys latency with CPU that the default does not spend).
POLLING = "sw-poll"
# What sw-poll is compared with, in its section's order.
POLLING_COMPARED = (POLLING, "switchyard", "nginx")
VARIANTS = {"tiny": "tiny GET", "4k": "4 KiB POST echo"}
# Per-row figures that the table shows as their median over the rounds.
MEDIAN_METRICS = ["sat_rps", "backend_us_per_req_sat", "cpu_us_per_req_sat", "proxy_busy_pct_sat",
                  "load_busy_pct_sat",
                  "kernel_us_per_req_sat", "cpu_us_per_req_open", "backend_us_per_req_open",
                  "added_p50_us", "added_p99_us"]
# Ratios of switchyard's figure to a peer's: name, metric, peer.
RATIOS = [
    ("throughput_sw_nginx", "sat_rps", "nginx"),
    ("throughput_sw_haproxy", "sat_rps", "haproxy"),
    ("cpu_sw_nginx", "cpu_us_per_req_sat", "nginx"),
    ("cpu_sw_haproxy", "cpu_us_per_req_sat", "haproxy"),
    ("cpu_open_sw_nginx", "cpu_us_per_req_open", "nginx"),
    ("cpu_open_sw_haproxy", "cpu_us_per_req_open", "haproxy"),
]
ROUND_IN_NAME = re.compile(r"-r(\d+)\.json$")


def load(pattern):
    """Raw rows as {(scenario, variant): {round: row}}. The round is the row's "round" field, else
    the -rN of the file name (switchyard-load's reports have no round field), else 1, so that raw
    directories from before the rounds still load."""
    rows = {}
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            row = json.load(f)
        key = (row.get("scenario") or row["label"].split("/")[0],
               row.get("variant") or row["label"].split("/")[1])
        in_name = ROUND_IN_NAME.search(os.path.basename(path))
        rnd = int(row.get("round") or (in_name.group(1) if in_name else 1))
        rows.setdefault(key, {})[rnd] = row
    return rows


def median(values):
    """Median of the values that are there (None for a missing one); None if none are."""
    present = [x for x in values if x is not None]
    return statistics.median(present) if present else None


def ratio(x, y):
    return x / y if x and y else None


def min_saturation(raw):
    """The lowest saturation throughput of any proxy (the direct call is not one), each taken as
    its median over the rounds so that one noisy round does not set it: loadtest/run halves it
    for the fixed rate."""
    sat = load(os.path.join(raw, "sat-*.json"))
    return int(min(median(row["rps"] for row in per_round.values())
                   for (scenario, _), per_round in sat.items() if scenario != "direct"))


def round_row(a, s, v, st, o, oc, direct):
    """One scenario's figures in one round: st, o and oc are that round's saturation, fixed-rate
    and fixed-rate CPU rows (None where missing), direct the direct call's fixed-rate row of the
    same round."""
    r = {"scenario": s, "variant": v}
    if st:
        r["sat_rps"] = st["rps"]
        r["sat_errors"] = st["errors"]
        if st["requests"] and "backend_ticks" in st:
            r["backend_us_per_req_sat"] = st["backend_ticks"] / a.ticks / st["requests"] * 1e6
        if st.get("load_cpu_total_ticks"):
            # The load core (wrk and the backend) near 100 % while the proxy's core is not: the
            # load core set the pace, not the proxy.
            r["load_busy_pct_sat"] = st["load_cpu_busy_ticks"] / st["load_cpu_total_ticks"] * 100
        if s != "direct" and st["requests"]:
            r["cpu_us_per_req_sat"] = st["cpu_ticks"] / a.ticks / st["requests"] * 1e6
            # How much of its core the proxy used: below ~100 % it waited part of the
            # run (for the load core, with the client and the backend on it, or for the
            # hand-offs between the cores), so it did not set the throughput alone.
            r["proxy_busy_pct_sat"] = st["cpu_ticks"] / a.ticks / a.sat_secs * 100
            if "kernel_ticks" in st:
                r["kernel_us_per_req_sat"] = st["kernel_ticks"] / a.ticks / st["requests"] * 1e6
    if o:
        r["open"] = o
        r["open_errors"] = o["errors"]
        # Warm-up requests ran too: divide by all requests sent during the window.
        sent = a.rate * (a.open_secs + 2)
        if oc and s != "direct" and o["requests"]:
            r["cpu_us_per_req_open"] = oc["cpu_ticks"] / a.ticks / sent * 1e6
        if oc and "backend_ticks" in oc:
            # The backend shares CPU 0 with the client, and each waits while the other runs:
            # what it spends there is part of every latency measured at the fixed rate.
            r["backend_us_per_req_open"] = oc["backend_ticks"] / a.ticks / sent * 1e6
        if direct and s != "direct":
            r["added_p50_us"] = o["latency_us"]["p50"] - direct["latency_us"]["p50"]
            r["added_p99_us"] = o["latency_us"]["p99"] - direct["latency_us"]["p99"]
    return r


def median_row(s, v, per_round):
    """The row the table shows: each figure's median over the rounds (each latency percentile on
    its own), errors summed over the rounds."""
    r = {"scenario": s, "variant": v}
    for key in MEDIAN_METRICS:
        m = median(x.get(key) for x in per_round)
        if m is not None:
            r[key] = m
    for key in ("sat_errors", "open_errors"):
        if any(key in x for x in per_round):
            r[key] = sum(x.get(key) or 0 for x in per_round)
    opens = [x["open"] for x in per_round if "open" in x]
    if opens:
        # The run's settings from the first round (the same in every round), its results as
        # medians; each round's own report is in latest.json's "rounds".
        o = dict(opens[0])
        for key in ("rate_achieved", "requests"):
            o[key] = median(x.get(key) for x in opens)
        o["errors"] = sum(x.get("errors") or 0 for x in opens)
        o["latency_us"] = {p: median(x["latency_us"].get(p) for x in opens)
                           for p in opens[0]["latency_us"]}
        o["rounds"] = len(opens)
        r["open"] = o
    return r


def round_ratios(rows_of_variant):
    """switchyard's ratios to its peers from one round's rows, by scenario."""
    sw = rows_of_variant["switchyard"]
    return {name: ratio(sw.get(metric), rows_of_variant[peer].get(metric))
            for name, metric, peer in RATIOS}


def targets(rv, sw, ng):
    """(target, met) for one variant, from its ratios rv and switchyard's and nginx's rows."""
    def at_most(x, limit):
        return x is not None and x <= limit

    return [
        ("CPU/request ≤ 0.8× nginx", at_most(rv["cpu_sw_nginx"], 0.8)),
        ("CPU/request ≤ 0.8× HAProxy", at_most(rv["cpu_sw_haproxy"], 0.8)),
        ("saturation throughput ≥ 1.2× nginx",
         rv["throughput_sw_nginx"] is not None and rv["throughput_sw_nginx"] >= 1.2),
        ("added p99 ≤ nginx's added p99", added_p99_at_most_nginx(sw, ng) is True),
    ]


def added_p99_at_most_nginx(row, ng):
    """Whether row's added p99 is at most nginx's row's (a negative added p99 of nginx's counts as
    zero); None if either is missing."""
    mine, nginx = row.get("added_p99_us"), ng.get("added_p99_us")
    return None if mine is None or nginx is None else mine <= max(nginx, 0)


def polling_figures(rows):
    """sw-poll against switchyard and nginx in one variant's rows (one round's, or the medians):
    added p50 and p99, and CPU per request at the fixed rate. None where a figure is missing."""
    return {key: {s: rows.get(s, {}).get(key) for s in POLLING_COMPARED}
            for key in ("added_p50_us", "added_p99_us", "cpu_us_per_req_open")}


def polling_p99_met(rows):
    """Whether sw-poll's added p99 is at most nginx's in these rows (None if either is missing)."""
    return added_p99_at_most_nginx(rows.get(POLLING, {}), rows.get("nginx", {}))


def round_errors(rows, tag):
    """Error messages for rows (one round's); tag names the round, or is empty."""
    return [f"{r['scenario']}/{r['variant']}{tag}: {r[key]} errors ({key})"
            for r in rows for key in ("sat_errors", "open_errors") if r.get(key)]


def main():
    p = argparse.ArgumentParser()
    for name in ["raw", "out", "machine", "versions"]:
        p.add_argument("--" + name, required=True)
    for name in ["ticks", "rate", "sat-secs", "open-secs", "sat-conns", "open-conns", "idle-conns"]:
        p.add_argument("--" + name, type=float, required=True)
    p.add_argument("--rounds", type=int, help="rounds loadtest/run measured (checked against the raw files)")
    p.add_argument("--idle-poll-us", type=float, default=None, help="sw-poll's --idle-poll-us")
    a = p.parse_args()

    sat = load(os.path.join(a.raw, "sat-*.json"))
    opn = load(os.path.join(a.raw, "open-*.json"))
    opncpu = load(os.path.join(a.raw, "opencpu-*.json"))
    mem = {}
    for path in glob.glob(os.path.join(a.raw, "mem-*.json")):
        with open(path) as f:
            row = json.load(f)
        mem[row["scenario"]] = row
    rounds = sorted({n for d in (sat, opn, opncpu) for per in d.values() for n in per}) or [1]
    if a.rounds is not None and a.rounds != len(rounds):
        print(f"report.py: asked for {a.rounds} rounds, found {len(rounds)} in {a.raw}", file=sys.stderr)
    multi = len(rounds) > 1

    # Per round: {round: {variant: {scenario: row}}}.
    per_round = {}
    for n in rounds:
        per_round[n] = {}
        for v in VARIANTS:
            direct = opn.get(("direct", v), {}).get(n)
            per_round[n][v] = {
                s: dict(round_row(a, s, v, sat.get((s, v), {}).get(n), opn.get((s, v), {}).get(n),
                                  opncpu.get((s, v), {}).get(n), direct), round=n)
                for s in SCENARIOS}

    result = {"machine": a.machine, "versions": a.versions, "rate": a.rate,
              "rounds_measured": len(rounds), "rows": [], "rounds": []}
    medians = {}
    for v in VARIANTS:
        medians[v] = {}
        for s in SCENARIOS:
            r = median_row(s, v, [per_round[n][v][s] for n in rounds])
            if s in mem:
                r["peak_rss_mib"] = mem[s]["peak_rss_kib"] / 1024
                idle = mem[s].get("idle_rss_kib")
                r["idle_rss_mib"] = None if idle is None else idle / 1024
            medians[v][s] = r
            result["rows"].append(r)
    result["rounds"] = [per_round[n][v][s] for n in rounds for v in VARIANTS for s in SCENARIOS]

    errors_by_round = {n: round_errors([per_round[n][v][s] for v in VARIANTS for s in SCENARIOS],
                                       f" round {n}" if multi else "")
                       for n in rounds}
    # Memory is measured once, after the rounds: a failed run of idle clients is an error of no
    # round, but an error of the run all the same.
    idle_failed = [f"{s}: the idle clients failed (no RSS with idle clients)"
                   for s in SCENARIOS if s in mem and mem[s].get("idle_rss_kib") is None]
    errors = [e for n in rounds for e in errors_by_round[n]] + idle_failed

    def row(s, v):
        return medians[v][s]

    # Ratios are paired: switchyard's and the peer's figure from the same round, then the median.
    ratios, ratios_per_round, checks = {}, {}, []
    for v in VARIANTS:
        each = {n: round_ratios(per_round[n][v]) for n in rounds}
        ratios_per_round[v] = {name: [each[n][name] for n in rounds] for name, _, _ in RATIOS}
        ratios[v] = {name: median(values) for name, values in ratios_per_round[v].items()}
        met = targets(ratios[v], row("switchyard", v), row("nginx", v))
        met_in_round = [targets(each[n], per_round[n][v]["switchyard"], per_round[n][v]["nginx"])
                        for n in rounds]
        for i, (name, ok) in enumerate(met):
            checks.append((f"{VARIANTS[v]}: {name}", ok, sum(m[i][1] for m in met_in_round)))
    checks.append(("zero errors in every scenario", not errors,
                   sum(not errors_by_round[n] for n in rounds)))
    result["ratios"] = ratios
    result["ratios_per_round"] = ratios_per_round
    result["checks"] = [{"target": t, "met": ok, "rounds_met": k, "rounds": len(rounds)}
                        for t, ok, k in checks]
    result["errors"] = errors
    result["idle_poll_us"] = a.idle_poll_us
    result["idle_polling"] = {
        v: dict(polling_figures(medians[v]),
                added_p99_at_most_nginx=polling_p99_met(medians[v]),
                rounds_added_p99_at_most_nginx=sum(
                    bool(polling_p99_met(per_round[n][v])) for n in rounds))
        for v in VARIANTS}

    def f(x, fmt="{:.0f}"):
        return "—" if x is None else fmt.format(x)

    def ratio_text(v, name, bold=True):
        """The median ratio, then (with several rounds) each round's in round order."""
        text = f(ratios[v][name], "{:.2f}")
        text = f"**{text}**" if bold else text
        if multi:
            text += " (" + ", ".join(f(x, "{:.2f}") for x in ratios_per_round[v][name]) + ")"
        return text

    rounds_text = ""
    if multi:
        rounds_text = (
            f"Measured in {len(rounds)} interleaved rounds, so that every scenario sees the same "
            f"spread of the machine's noise: in each round every scenario ran its saturation runs "
            f"once (both variants, one scenario after the other), and, after the last saturation "
            f"round, its fixed-rate runs likewise once per round. Table values are medians over the "
            f"rounds (each latency percentile on its own; *added* against the direct call of the "
            f"same round; errors summed over the rounds); ratios are medians of the per-round "
            f"ratios (switchyard and its peer from the same round), the per-round values following "
            f"in round order. Targets are checked on the medians; *rounds met* counts the rounds "
            f"whose own figures met the target. Memory is measured once, after the last round. ")
    lines = [
        "# switchyard load test: latest results",
        "",
        f"Machine: {a.machine}. {a.versions}.",
        "",
        f"{rounds_text}Every proxy runs on CPU 1 alone (nginx: 1 worker; HAProxy: 1 thread; "
        f"switchyard: 1 shard); "
        f"the backend (switchyard-echo: HTTP/1.1 for the peers, gRPC for switchyard, same routes) and "
        f"the load generators run on CPU 0. *ha+2sw* is HAProxy (tuning/haproxy.cfg) in front of two "
        f"switchyard gateways, all three on CPU 1. *{POLLING}* is switchyard started with "
        f"`--idle-poll-us {f(a.idle_poll_us)}` (a shard that runs out of work polls that long "
        f"before it sleeps): not the default, and not what the targets are checked on. Saturation: wrk, {a.sat_conns:.0f} connections, "
        f"{a.sat_secs:.0f} s (closed loop). Fixed rate: switchyard-load, {a.rate:.0f} req/s open loop "
        f"over {a.open_conns:.0f} connections for {a.open_secs:.0f} s after a 2 s warm-up, latency "
        f"from each request's scheduled send time; *added* is the scenario's percentile minus the "
        f"direct call's. CPU/request is the proxy processes' user+sys time from /proc over the wrk "
        f"run ÷ requests (and over the fixed-rate run); *of which kernel* is the sys part of the "
        f"saturation figure; *CPU 1 busy* is the proxy processes' share of their core over the wrk "
        f"run (below ~100 % the proxy spent part of the run waiting, for CPU 0, which runs wrk and "
        f"the backend, or for the hand-offs between the cores); *CPU 0 busy* is that core's "
        f"busy share over the wrk run (/proc/stat: user, system, irq and softirq time of "
        f"everything on it); "
        f"*backend* is the backend's CPU per request over the same run (gRPC for switchyard, "
        f"HTTP/1.1 otherwise), spent on CPU 0, and at the fixed rate likewise over the "
        f"open-loop run (the client and the backend share that core, and each waits while the "
        f"other runs). Idle RSS: with {a.idle_conns:.0f} idle "
        f"keep-alive client connections, each after one request, read 3 s after the last "
        f"one connected.",
        "",
    ]
    for v, title in VARIANTS.items():
        lines += [
            f"## {title}",
            "",
            "| scenario | saturation req/s | CPU µs/req (sat) | of which kernel | CPU 1 busy % (sat) | CPU 0 busy % (sat) | backend µs/req (sat) | CPU µs/req (fixed rate) | backend µs/req (fixed rate) | p50 µs | p99 µs | added p50 µs | added p99 µs | p99.9 µs | peak RSS MiB | RSS, idle clients MiB | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in SCENARIOS:
            r = row(s, v)
            o = r.get("open", {}).get("latency_us", {})
            lines.append(
                f"| {s} | {f(r.get('sat_rps'))} | {f(r.get('cpu_us_per_req_sat'), '{:.1f}')} | "
                f"{f(r.get('kernel_us_per_req_sat'), '{:.1f}')} | {f(r.get('proxy_busy_pct_sat'))} | "
                f"{f(r.get('load_busy_pct_sat'))} | {f(r.get('backend_us_per_req_sat'), '{:.1f}')} | "
                f"{f(r.get('cpu_us_per_req_open'), '{:.1f}')} | "
                f"{f(r.get('backend_us_per_req_open'), '{:.1f}')} | {f(o.get('p50'))} | "
                f"{f(o.get('p99'))} | "
                f"{f(r.get('added_p50_us'))} | {f(r.get('added_p99_us'))} | {f(o.get('p999'))} | "
                f"{f(r.get('peak_rss_mib'), '{:.1f}')} | {f(r.get('idle_rss_mib'), '{:.1f}')} | "
                f"{(r.get('sat_errors') or 0) + (r.get('open_errors') or 0)} |")
        # Already in parentheses with one round; with several, the per-round lists bring their own.
        fixed = (f"{ratio_text(v, 'cpu_open_sw_nginx', bold=False)} and "
                 f"{ratio_text(v, 'cpu_open_sw_haproxy', bold=False)}")
        fixed_rate = f"; at the fixed rate: {fixed}" if multi else f" (at the fixed rate: {fixed})"
        lines += [
            "",
            f"Ratios: throughput switchyard/nginx {ratio_text(v, 'throughput_sw_nginx')}, "
            f"switchyard/HAProxy {ratio_text(v, 'throughput_sw_haproxy')}; CPU per request "
            f"switchyard/nginx {ratio_text(v, 'cpu_sw_nginx')}, switchyard/HAProxy "
            f"{ratio_text(v, 'cpu_sw_haproxy')}{fixed_rate}.",
            "",
        ]
    lines += ["## Targets", "", "| target | met | rounds met |", "|---|---|---|"]
    lines += [f"| {t} | {'yes' if ok else '**no**'} | {k} of {len(rounds)} |" for t, ok, k in checks]
    lines += [
        "",
        f"## Idle polling (`--idle-poll-us {f(a.idle_poll_us)}`, not the default)",
        "",
        "The same gateway with its shard polling before it sleeps: the latency it saves and the CPU "
        "it spends at the fixed rate, beside the default and nginx. Not a target: the targets hold "
        "switchyard's default to nginx's latency and CPU at once.",
        "",
        "| variant | added p50 µs (poll / default / nginx) | added p99 µs (poll / default / nginx) "
        "| CPU µs/req at the fixed rate (poll / default / nginx) | added p99 ≤ nginx's | rounds |",
        "|---|---|---|---|---|---|",
    ]
    for v, title in VARIANTS.items():
        ip = result["idle_polling"][v]

        def three(key, fmt="{:.0f}"):
            return " / ".join(f(ip[key][s], fmt) for s in POLLING_COMPARED)

        met = ip["added_p99_at_most_nginx"]
        lines.append(
            f"| {title} | {three('added_p50_us')} | {three('added_p99_us')} | "
            f"{three('cpu_us_per_req_open', '{:.1f}')} | "
            f"{'—' if met is None else ('yes' if met else 'no')} | "
            f"{ip['rounds_added_p99_at_most_nginx']} of {len(rounds)} |")
    if errors:
        lines += ["", "Errors: " + "; ".join(errors)]
    lines += ["", "![latest](latest.png)", ""]
    with open(os.path.join(a.out, "latest.md"), "w") as fh:
        fh.write("\n".join(lines))
    with open(os.path.join(a.out, "latest.json"), "w") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")

    # Chart: saturation throughput, CPU per request (kernel part hatched) and added p99 per
    # scenario, both variants.
    dat = os.path.join(a.out, "latest-sat.dat")
    with open(dat, "w") as fh:
        for s in SCENARIOS:
            t, k = row(s, "tiny"), row(s, "4k")
            fh.write(f'"{s}" {t.get("sat_rps") or 0} {k.get("sat_rps") or 0} '
                     f'{t.get("added_p99_us") or 0} {k.get("added_p99_us") or 0} '
                     f'{t.get("cpu_us_per_req_sat") or 0} {k.get("cpu_us_per_req_sat") or 0} '
                     f'{t.get("kernel_us_per_req_sat") or 0} {k.get("kernel_us_per_req_sat") or 0}\n')
    gp = f"""set terminal pngcairo size 1500,450 font ",10"
set output "{os.path.join(a.out, 'latest.png')}"
set multiplot layout 1,3
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key top right
set yrange [0:*]
set title "saturation throughput (req/s, wrk)"
plot "{dat}" using 2:xtic(1) title "tiny GET", "" using 3 title "4 KiB POST"
set title "proxy CPU per request (µs, saturation; hatched: kernel part)"
set xrange [-0.6:{len(SCENARIOS) - 0.4}]
set key top left
plot "{dat}" using ($0-0.2):6:(0.38):xtic(1) with boxes lc 1 title "tiny GET", \\
     "" using ($0+0.2):7:(0.38) with boxes lc 2 title "4 KiB POST", \\
     "" using ($0-0.2):8:(0.38) with boxes fs pattern 2 lc rgb "black" title "kernel", \\
     "" using ($0+0.2):9:(0.38) with boxes fs pattern 2 lc rgb "black" notitle
set xrange [*:*]
set title "added p99 at {a.rate:.0f} req/s (µs, open loop)"
set yrange [*:*]
plot "{dat}" using 4:xtic(1) title "tiny GET", "" using 5 title "4 KiB POST"
unset multiplot
"""
    with open(os.path.join(a.out, "latest.gp"), "w") as fh:
        fh.write(gp)
    print("\n".join(lines))
    return 1 if errors else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["min-saturation"] and len(sys.argv) == 3:
        print(min_saturation(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
