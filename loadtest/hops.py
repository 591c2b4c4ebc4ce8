#!/usr/bin/env python3
"""Splits each proxied request's latency into its hops, from a loopback capture (pcap, nanosecond
timestamps, Ethernet framing as `tcpdump -i lo` writes it). Standard library only.

usage: hops.py CAPTURE PROXY_PORT BACKEND_PORT

A request is followed by its request id, a 32-hex-digit string that the proxy sends to the backend
(switchyard: in the ForwardingReq; nginx: an X-Request-Id header loadtest/hops adds), that the
sample backend echoes in its JSON answer and that the proxy returns in its x-request-id header. Its
client segment is the first data segment on its client connection after the previous answer there
(one request in flight per connection, as switchyard-load sends them). Each timestamp is the
segment's first transmission on lo, taken in the sender's context before the receiver runs:
  in       client's request -> the proxy's call to the backend (delivery, wake-up, proxy's work)
  backend  the call -> the backend's answer (delivery, the backend's wake-up and work)
  out      the answer -> the proxy's answer to the client
  total    the client's request -> the proxy's answer
It then splits the hop in by how many calls the proxy's segment to the backend carried, and the
hop out by how many answers the backend's segment carried: calls that share a segment (a
multiplexed connection's writer sending several at once) left together, the first waiting for
the others, and answers that share a segment are answered by the proxy one after the other.
"""

import re
import statistics
import struct
import sys

REQUEST_ID = re.compile(rb"[0-9a-f]{32}")
PCAP_NANO = 0xA1B23C4D
PCAP_MICRO = 0xA1B2C3D4
ETHERNET_HEADER = 14
# Calls or answers per segment from which the splits group them together.
BATCH_CAP = 3
# The splits: hop, its boundaries, the segment whose number of requests it is split by.
SPLITS = (("in", "client", "call", "call", "calls in the proxy's segment"),
          ("out", "answer", "reply", "answer", "answers in the backend's segment"))
HOPS = (("in", "client", "call"), ("backend", "call", "answer"), ("out", "answer", "reply"),
        ("total", "client", "reply"))


def segments(path, proxy_port, backend_port):
    """(time in µs, kind, client port, payload) of every data segment, in capture order."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in (PCAP_NANO, PCAP_MICRO):
        sys.exit(f"hops.py: {path} is not a little-endian pcap file")
    per_unit = 1000.0 if magic == PCAP_NANO else 1.0
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack("<IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        ip = frame[ETHERNET_HEADER:]
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 0xF) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:]
        sport, dport = struct.unpack(">HH", tcp[:4])
        payload = tcp[(tcp[12] >> 4) * 4:total - ihl]
        if not payload:
            continue
        t = sec * 1e6 + frac / per_unit
        if dport == proxy_port:
            out.append((t, "client", sport, payload))
        elif sport == proxy_port:
            out.append((t, "reply", dport, payload))
        elif dport == backend_port:
            out.append((t, "call", None, payload))
        elif sport == backend_port:
            out.append((t, "answer", None, payload))
    return out


def requests(segs):
    """{request id: {hop boundary: time, ("batch", boundary): requests in that segment}} for
    the requests seen whole."""
    seen, waiting = {}, {}
    for t, kind, client, payload in segs:
        if kind == "client":
            waiting.setdefault(client, t)
            continue
        ids = set(REQUEST_ID.findall(payload))
        for rid in ids:
            r = seen.setdefault(rid, {})
            if kind not in r:
                r[kind] = t
                r[("batch", kind)] = len(ids)
        if kind == "reply":
            sent = waiting.pop(client, None)
            for rid in ids:
                if sent is not None:
                    seen[rid]["client"] = sent
    order = ("client", "call", "answer", "reply")
    return {rid: r for rid, r in seen.items()
            if all(k in r for k in order) and all(r[a] <= r[b] for a, b in zip(order, order[1:]))}


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(xs):
    """Percentiles and mean of a list of µs, as one line's tail."""
    xs = sorted(xs)
    return (f"p10 {percentile(xs, .1):7.1f}  p50 {percentile(xs, .5):7.1f}  "
            f"p90 {percentile(xs, .9):7.1f}  p99 {percentile(xs, .99):7.1f}  "
            f"mean {statistics.mean(xs):7.1f} µs")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    segs = segments(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    reqs = requests(segs)
    ids = {rid for _, kind, _, p in segs if kind == "reply" for rid in REQUEST_ID.findall(p)}
    if not reqs:
        sys.exit("hops.py: no request was seen whole (are the ports right?)")
    print(f"{len(reqs)} of {len(ids)} answered requests followed through every hop")
    for name, start, end in HOPS:
        print(f"  {name:8s} {summary(r[end] - r[start] for r in reqs.values())}")
    for name, start, end, segment, by in SPLITS:
        groups = {}
        for r in reqs.values():
            batch = min(r[("batch", segment)], BATCH_CAP)
            groups.setdefault(batch, []).append(r[end] - r[start])
        print(f"  {name}, by {by}:")
        for batch, xs in sorted(groups.items()):
            label = f"{batch}+" if batch == BATCH_CAP else f"{batch}"
            print(f"    {label:2s} {len(xs):6d} ({100 * len(xs) / len(reqs):4.1f} %)  {summary(xs)}")


if __name__ == "__main__":
    main()
