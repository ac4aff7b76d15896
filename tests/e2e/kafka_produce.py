#!/usr/bin/python3
"""kafka_produce.py BROKERS TOPIC FILE - produces FILE's lines "TS_MS|KEY|VALUE"
to TOPIC, each record with the Kafka timestamp TS_MS (CreateTime), in order.

kcat cannot set a record's timestamp; the bridge stamps each record with the
time it received the reading.  Suites whose results depend on record
timestamps (replay and billing's recomputed days) produce with this so that
they do not depend on when they run.  Idempotent producer, acks=all, as the
bridge; exits 1 if any record was not delivered.  Needs python3-confluent-kafka
(scripts/bootstrap); run it with /usr/bin/python3, whose packages those are.
"""
import sys

from confluent_kafka import Producer


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    brokers, topic, path = sys.argv[1:]
    failed = []

    def report(err, _msg):
        if err is not None:
            failed.append(err)

    p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                  "log_level": 3})  # errors only: not the retries of a fresh broker
    n = 0
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if not line:
                continue
            ts, key, value = line.split(b"|", 2)
            while True:
                try:
                    p.produce(topic, value=value, key=key, timestamp=int(ts), on_delivery=report)
                    break
                except BufferError:
                    p.poll(0.1)
            n += 1
            p.poll(0)
    left = p.flush(30)
    if left or failed:
        sys.stderr.write("kafka_produce: %d of %d records not delivered (%s)\n"
                         % (left + len(failed), n, failed[0] if failed else "timeout"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
