"""A Kafka client that is not the gateway's (kafka-python, pure Python) for tests/cluster.rs.

    kafka_peer.py --bootstrap HOST:PORT --topic T read
        Reads the topic from the beginning to its current end and prints one JSON line per record:
        {"partition":..,"offset":..,"key":str|null,"value":str|null,"headers":{name:str}}
        Fails (exit 1, the partitions left on stderr) if the end is not reached in READ_LIMIT_S.
    kafka_peer.py --bootstrap HOST:PORT --topic T produce KEY VALUE [NODE_ID]
        Produces one record (VALUE "-" means a tombstone) with acks=all and prints
        `produced PARTITION OFFSET` once the broker acknowledged it.
    kafka_peer.py --bootstrap HOST:PORT --topic T create-topic PARTITIONS [NAME=VALUE ...]
        Creates the topic with PARTITIONS partitions, replication factor 1 and the given topic
        configuration, and prints `created`.
"""

import argparse
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

# How long `read` may take to reach the end offsets it found: a broker that stops serving the
# records must fail the test, not hang it (each poll returns {} then, and the loop would go on).
READ_LIMIT_S = 30.0
# How long `produce` waits for the broker's acknowledgement.
PRODUCE_LIMIT_S = 30.0
# How long `create-topic` waits for the broker's answer.
ADMIN_LIMIT_MS = 30000


def read(args):
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=10000,
    )
    partitions = consumer.partitions_for_topic(args.topic) or set()
    tps = [TopicPartition(args.topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    remaining = {tp for tp in tps if ends[tp] > consumer.position(tp)}
    deadline = time.monotonic() + READ_LIMIT_S
    while remaining:
        if time.monotonic() >= deadline:
            left = ", ".join("partition %d at %d of %d" % (tp.partition, consumer.position(tp), ends[tp])
                             for tp in sorted(remaining))
            sys.exit("kafka_peer.py read: the end of %s not reached within %.0f s (%s)"
                     % (args.topic, READ_LIMIT_S, left))
        batch = consumer.poll(timeout_ms=1000)
        for tp, records in batch.items():
            for r in records:
                print(json.dumps({
                    "partition": r.partition,
                    "offset": r.offset,
                    "key": r.key.decode() if r.key is not None else None,
                    "value": r.value.decode() if r.value is not None else None,
                    "headers": {k: v.decode() for k, v in (r.headers or [])},
                }), flush=True)
        remaining = {tp for tp in remaining if consumer.position(tp) < ends[tp]}
    consumer.close()


def produce(args):
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    headers = [("node-id", args.node_id.encode())] if args.node_id else []
    value = None if args.value == "-" else args.value.encode()
    meta = producer.send(args.topic, key=args.key.encode(), value=value, headers=headers).get(timeout=PRODUCE_LIMIT_S)
    print(f"produced {meta.partition} {meta.offset}", flush=True)
    producer.close()


def create_topic(args):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=ADMIN_LIMIT_MS)
    configs = dict(kv.split("=", 1) for kv in args.config)
    admin.create_topics([NewTopic(args.topic, args.partitions, 1, topic_configs=configs)])
    admin.close()
    print("created", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("read")
    pr = sub.add_parser("produce")
    pr.add_argument("key")
    pr.add_argument("value")
    pr.add_argument("node_id", nargs="?")
    ct = sub.add_parser("create-topic")
    ct.add_argument("partitions", type=int)
    ct.add_argument("config", nargs="*")
    args = p.parse_args()
    {"read": read, "produce": produce, "create-topic": create_topic}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
