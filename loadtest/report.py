#!/usr/bin/env python3
"""Turns loadtest/run's raw measurements into latest.md, latest.json and a gnuplot script for
latest.png. Exits 1 if any scenario had errors. Standard library only."""

import argparse
import glob
import json
import os
import sys

SCENARIOS = ["direct", "nginx", "haproxy", "switchyard", "ha+2sw"]
VARIANTS = {"tiny": "tiny GET", "4k": "4 KiB POST echo"}


def load(pattern):
    rows = {}
    for path in glob.glob(pattern):
        with open(path) as f:
            row = json.load(f)
        key = (row.get("scenario") or row["label"].split("/")[0],
               row.get("variant") or row["label"].split("/")[1])
        rows[key] = row
    return rows


def main():
    p = argparse.ArgumentParser()
    for name in ["raw", "out", "machine", "versions"]:
        p.add_argument("--" + name, required=True)
    for name in ["ticks", "rate", "sat-secs", "open-secs", "sat-conns", "open-conns", "idle-conns"]:
        p.add_argument("--" + name, type=float, required=True)
    a = p.parse_args()

    sat = load(os.path.join(a.raw, "sat-*.json"))
    opn = load(os.path.join(a.raw, "open-*.json"))
    opncpu = load(os.path.join(a.raw, "opencpu-*.json"))
    mem = {}
    for path in glob.glob(os.path.join(a.raw, "mem-*.json")):
        with open(path) as f:
            row = json.load(f)
        mem[row["scenario"]] = row

    result = {"machine": a.machine, "versions": a.versions, "rate": a.rate, "rows": []}
    errors = []
    for v in VARIANTS:
        direct = opn.get(("direct", v))
        for s in SCENARIOS:
            r = {"scenario": s, "variant": v}
            st = sat.get((s, v))
            if st:
                r["sat_rps"] = st["rps"]
                r["sat_errors"] = st["errors"]
                if st["requests"] and "backend_ticks" in st:
                    r["backend_us_per_req_sat"] = st["backend_ticks"] / a.ticks / st["requests"] * 1e6
                if s != "direct" and st["requests"]:
                    r["cpu_us_per_req_sat"] = st["cpu_ticks"] / a.ticks / st["requests"] * 1e6
                    # How much of its core the proxy used: below ~100 % it waited part of the
                    # run (for the load core, with the client and the backend on it, or for the
                    # hand-offs between the cores), so it did not set the throughput alone.
                    r["proxy_busy_pct_sat"] = st["cpu_ticks"] / a.ticks / a.sat_secs * 100
                    if "kernel_ticks" in st:
                        r["kernel_us_per_req_sat"] = st["kernel_ticks"] / a.ticks / st["requests"] * 1e6
            o = opn.get((s, v))
            if o:
                r["open"] = o
                r["open_errors"] = o["errors"]
                oc = opncpu.get((s, v))
                if oc and s != "direct" and o["requests"]:
                    # Warm-up requests ran too: divide by all requests sent during the window.
                    sent = a.rate * (a.open_secs + 2)
                    r["cpu_us_per_req_open"] = oc["cpu_ticks"] / a.ticks / sent * 1e6
                if direct and s != "direct":
                    r["added_p50_us"] = o["latency_us"]["p50"] - direct["latency_us"]["p50"]
                    r["added_p99_us"] = o["latency_us"]["p99"] - direct["latency_us"]["p99"]
            if s in mem:
                r["peak_rss_mib"] = mem[s]["peak_rss_kib"] / 1024
                r["idle_rss_mib"] = mem[s]["idle_rss_kib"] / 1024
            for key in ("sat_errors", "open_errors"):
                if r.get(key):
                    errors.append(f"{s}/{v}: {r[key]} errors ({key})")
            result["rows"].append(r)

    def row(s, v):
        return next(r for r in result["rows"] if r["scenario"] == s and r["variant"] == v)

    def ratio(x, y):
        return x / y if x and y else None

    checks = []
    ratios = {}
    for v in VARIANTS:
        sw, ng, ha = row("switchyard", v), row("nginx", v), row("haproxy", v)
        ratios[v] = {
            "throughput_sw_nginx": ratio(sw.get("sat_rps"), ng.get("sat_rps")),
            "throughput_sw_haproxy": ratio(sw.get("sat_rps"), ha.get("sat_rps")),
            "cpu_sw_nginx": ratio(sw.get("cpu_us_per_req_sat"), ng.get("cpu_us_per_req_sat")),
            "cpu_sw_haproxy": ratio(sw.get("cpu_us_per_req_sat"), ha.get("cpu_us_per_req_sat")),
            "cpu_open_sw_nginx": ratio(sw.get("cpu_us_per_req_open"), ng.get("cpu_us_per_req_open")),
            "cpu_open_sw_haproxy": ratio(sw.get("cpu_us_per_req_open"), ha.get("cpu_us_per_req_open")),
        }
        rv = ratios[v]

        def check(name, ok):
            checks.append((f"{VARIANTS[v]}: {name}", ok))

        check("CPU/request ≤ 0.8× nginx", rv["cpu_sw_nginx"] is not None and rv["cpu_sw_nginx"] <= 0.8)
        check("CPU/request ≤ 0.8× HAProxy", rv["cpu_sw_haproxy"] is not None and rv["cpu_sw_haproxy"] <= 0.8)
        check("saturation throughput ≥ 1.2× nginx",
              rv["throughput_sw_nginx"] is not None and rv["throughput_sw_nginx"] >= 1.2)
        check("added p99 ≤ nginx's added p99",
              sw.get("added_p99_us") is not None and ng.get("added_p99_us") is not None
              and sw["added_p99_us"] <= max(ng["added_p99_us"], 0))
    checks.append(("zero errors in every scenario", not errors))
    result["ratios"] = ratios
    result["checks"] = [{"target": t, "met": ok} for t, ok in checks]
    result["errors"] = errors

    def f(x, fmt="{:.0f}"):
        return "—" if x is None else fmt.format(x)

    lines = [
        "# switchyard load test: latest results",
        "",
        f"Machine: {a.machine}. {a.versions}.",
        "",
        f"Every proxy runs on CPU 1 alone (nginx: 1 worker; HAProxy: 1 thread; switchyard: 1 shard); "
        f"the backend (switchyard-echo: HTTP/1.1 for the peers, gRPC for switchyard, same routes) and "
        f"the load generators run on CPU 0. *ha+2sw* is HAProxy (tuning/haproxy.cfg) in front of two "
        f"switchyard gateways, all three on CPU 1. Saturation: wrk, {a.sat_conns:.0f} connections, "
        f"{a.sat_secs:.0f} s (closed loop). Fixed rate: switchyard-load, {a.rate:.0f} req/s open loop "
        f"over {a.open_conns:.0f} connections for {a.open_secs:.0f} s after a 2 s warm-up, latency "
        f"from each request's scheduled send time; *added* is the scenario's percentile minus the "
        f"direct call's. CPU/request is the proxy processes' user+sys time from /proc over the wrk "
        f"run ÷ requests (and over the fixed-rate run); *of which kernel* is the sys part of the "
        f"saturation figure; *CPU 1 busy* is the proxy processes' share of their core over the wrk "
        f"run (below ~100 % the proxy spent part of the run waiting, for CPU 0, which runs wrk and "
        f"the backend, or for the hand-offs between the cores); "
        f"*backend* is the backend's CPU per request over the same run (gRPC for switchyard, "
        f"HTTP/1.1 otherwise), spent on CPU 0. Idle RSS: with {a.idle_conns:.0f} idle "
        f"keep-alive client connections, each after one request, read 3 s after the last "
        f"one connected.",
        "",
    ]
    for v, title in VARIANTS.items():
        lines += [
            f"## {title}",
            "",
            "| scenario | saturation req/s | CPU µs/req (sat) | of which kernel | CPU 1 busy % (sat) | backend µs/req (sat) | CPU µs/req (fixed rate) | p50 µs | p99 µs | added p50 µs | added p99 µs | p99.9 µs | peak RSS MiB | RSS, idle clients MiB | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in SCENARIOS:
            r = row(s, v)
            o = r.get("open", {}).get("latency_us", {})
            lines.append(
                f"| {s} | {f(r.get('sat_rps'))} | {f(r.get('cpu_us_per_req_sat'), '{:.1f}')} | "
                f"{f(r.get('kernel_us_per_req_sat'), '{:.1f}')} | {f(r.get('proxy_busy_pct_sat'))} | "
                f"{f(r.get('backend_us_per_req_sat'), '{:.1f}')} | "
                f"{f(r.get('cpu_us_per_req_open'), '{:.1f}')} | {f(o.get('p50'))} | {f(o.get('p99'))} | "
                f"{f(r.get('added_p50_us'))} | {f(r.get('added_p99_us'))} | {f(o.get('p999'))} | "
                f"{f(r.get('peak_rss_mib'), '{:.1f}')} | {f(r.get('idle_rss_mib'), '{:.1f}')} | "
                f"{(r.get('sat_errors') or 0) + (r.get('open_errors') or 0)} |")
        rv = ratios[v]
        lines += [
            "",
            f"Ratios: throughput switchyard/nginx **{f(rv['throughput_sw_nginx'], '{:.2f}')}**, "
            f"switchyard/HAProxy **{f(rv['throughput_sw_haproxy'], '{:.2f}')}**; CPU per request "
            f"switchyard/nginx **{f(rv['cpu_sw_nginx'], '{:.2f}')}**, switchyard/HAProxy "
            f"**{f(rv['cpu_sw_haproxy'], '{:.2f}')}** (at the fixed rate: "
            f"{f(rv['cpu_open_sw_nginx'], '{:.2f}')} and {f(rv['cpu_open_sw_haproxy'], '{:.2f}')}).",
            "",
        ]
    lines += ["## Targets", "", "| target | met |", "|---|---|"]
    lines += [f"| {t} | {'yes' if ok else '**no**'} |" for t, ok in checks]
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
    sys.exit(main())
