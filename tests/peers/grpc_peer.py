#!/usr/bin/env python3
"""A ForwardingService backend written with another gRPC implementation (Python grpcio).

The integration test tests/grpc_peer.rs registers it with the gateway to prove that switchyard's
upstream gRPC client interoperates with a gRPC stack it was not developed against (grpcio checks
content-type, te: trailers, framing and grpc-timeout the way real backends do).

Usage: grpc_peer.py [--port PORT] [--proto-root DIR]
  PORT 0 (the default) lets the OS choose; the peer prints
  `grpc-peer listening on 127.0.0.1:PORT` once it serves.

Answers, chosen by ForwardingReq.path:
  /abort/{code}  gRPC error with status {code} and message "grpc-peer abort {code}"
  /record/{tag}  appends {"tag","field","method","in_flight"} to this process's log (field is
                 graphql_field, in_flight the number of calls being served when this one arrived,
                 itself included) and answers it (status 200, JSON)
  /log           the log so far, as a JSON array, in arrival order
  /len           status 200, {"body_len": n, "headers": count}: a short answer for a large body
  /barrier/{name}/{n}
                 waits until n calls for barrier {name} have arrived, then answers
                 {"barrier":name,"arrived":n} (status 200). Only concurrent calls can pass a barrier
                 of n > 1: if they came one after another the first would wait alone, so after
                 BARRIER_WAIT_S seconds it gives up with status 504 and
                 {"error":{"code":"BARRIER_TIMEOUT","message":...}} (a bound on a failing test,
                 not a timing assertion).
  /reply         the answer the request's x-reply header spells out, as JSON
                 {"status": int, "headers": [[name, value]...], "body": str}: headers the sample
                 backend cannot send (values with surrounding spaces, any name), for any method
  anything else  status 200, header x-peer: grpcio, JSON body describing the request:
                 {"impl","method","path","query","headers":[[n,v]...],"body","body_len",
                  "service","request_id","remote_addr","graphql_field"}
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent import futures

import grpc

PROTO = "forwarding/v1/forwarding.proto"

# Below the gateway's default upstream deadline (10 s), so a stuck barrier is reported by the peer.
BARRIER_WAIT_S = 5.0


def generate(proto_root, out_dir):
    """Compiles the proto with grpc_tools (protoc bundled in grpcio-tools) into out_dir."""
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        "-I", proto_root,
        "--python_out=" + out_dir,
        "--grpc_python_out=" + out_dir,
        os.path.join(proto_root, PROTO),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("grpc_tools.protoc failed: " + res.stderr)
    sys.path.insert(0, out_dir)


def body_text(b):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--proto-root", default=os.path.join(here, "..", "..", "proto"))
    args = ap.parse_args()

    out_dir = tempfile.mkdtemp(prefix="grpc-peer-")
    generate(os.path.abspath(args.proto_root), out_dir)
    from forwarding.v1 import forwarding_pb2 as pb
    from forwarding.v1 import forwarding_pb2_grpc as pb_grpc

    # The generated modules are loaded; the peer is usually killed, so clean up now, not at exit.
    shutil.rmtree(out_dir, ignore_errors=True)

    lock = threading.Condition()
    state = {"log": [], "in_flight": 0, "barriers": {}}

    def json_resp(status, value):
        return pb.ForwardingResp(
            status_code=status,
            headers=[pb.Header(name="content-type", value="application/json")],
            body=json.dumps(value).encode("utf-8"),
        )

    def record(req, tag):
        with lock:
            entry = {
                "tag": tag,
                "field": req.graphql_field,
                "method": req.method,
                "in_flight": state["in_flight"],
            }
            state["log"].append(entry)
        return json_resp(200, entry)

    def barrier(name, n):
        with lock:
            state["barriers"][name] = state["barriers"].get(name, 0) + 1
            lock.notify_all()
            passed = lock.wait_for(lambda: state["barriers"][name] >= n, timeout=BARRIER_WAIT_S)
            arrived = state["barriers"][name]
        if not passed:
            return json_resp(504, {"error": {
                "code": "BARRIER_TIMEOUT",
                "message": "barrier %s: %d of %d calls arrived" % (name, arrived, n),
            }})
        return json_resp(200, {"barrier": name, "arrived": n})

    class Forwarding(pb_grpc.ForwardingServiceServicer):
        def Send(self, req, context):
            with lock:
                state["in_flight"] += 1
            try:
                return self.answer(req, context)
            finally:
                with lock:
                    state["in_flight"] -= 1

        def answer(self, req, context):
            if req.path.startswith("/record/"):
                return record(req, req.path[len("/record/"):])
            if req.path == "/len":
                return json_resp(200, {"body_len": len(req.body), "headers": len(req.headers)})
            if req.path == "/log":
                with lock:
                    return json_resp(200, list(state["log"]))
            if req.path.startswith("/barrier/"):
                name, n = req.path[len("/barrier/"):].rsplit("/", 1)
                return barrier(name, int(n))
            if req.path == "/reply":
                spec = json.loads(next(h.value for h in req.headers if h.name == "x-reply"))
                return pb.ForwardingResp(
                    status_code=spec["status"],
                    headers=[pb.Header(name=n, value=v) for n, v in spec["headers"]],
                    body=spec["body"].encode("utf-8"),
                )
            if req.path.startswith("/abort/"):
                code_num = int(req.path[len("/abort/"):])
                code = next(c for c in grpc.StatusCode if c.value[0] == code_num)
                context.abort(code, "grpc-peer abort %d" % code_num)
            answer = {
                "impl": "grpcio",
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "headers": [[h.name, h.value] for h in req.headers],
                "body": body_text(req.body),
                "body_len": len(req.body),
                "service": req.service,
                "request_id": req.request_id,
                "remote_addr": req.remote_addr,
                "graphql_field": req.graphql_field,
            }
            return pb.ForwardingResp(
                status_code=200,
                headers=[
                    pb.Header(name="content-type", value="application/json"),
                    pb.Header(name="x-peer", value="grpcio"),
                ],
                body=json.dumps(answer).encode("utf-8"),
            )

    # grpcio sets SO_REUSEPORT by default, and a port-0 bind with it may be handed a port that
    # another SO_REUSEPORT socket of this user listens on: a gateway under test. The gateway's
    # calls to the peer would then reach the gateway itself (404 for the gRPC path).
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16), options=[("grpc.so_reuseport", 0)]
    )
    pb_grpc.add_ForwardingServiceServicer_to_server(Forwarding(), server)
    port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    if port == 0:
        sys.exit("cannot bind 127.0.0.1:%d" % args.port)
    server.start()

    def stop(_sig, _frame):
        server.stop(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("grpc-peer listening on 127.0.0.1:%d" % port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
