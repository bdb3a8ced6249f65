"""A real oslo.messaging notification listener for the AMQP sink's tests.

Listens on the given exchange and topic with
oslo_messaging.get_notification_listener, as Watcher's consumers do, and
writes every notification it receives as one JSON line:
{"priority", "publisher_id", "event_type", "payload", "metadata"}.
Dispatches on one thread, so the lines are in the order received. Creates
the ready file once it consumes; stops on SIGTERM.

    python oslo_listener.py --url rabbit://guest:guest@127.0.0.1:PORT/ \
        --out FILE --ready FILE [--exchange watcher] [--topic notifications]
        [--durable] [--ssl-ca CA.pem]

With --ssl-ca the transport is TLS (oslo.messaging's [oslo_messaging_rabbit]
ssl and ssl_ca_file), the broker verified against that CA.
"""

import argparse
import json
import signal
import sys
import threading

from oslo_config import cfg
import oslo_messaging


class Endpoint:
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()

    def _write(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        line = json.dumps({
            "priority": priority,
            "publisher_id": publisher_id,
            "event_type": event_type,
            "payload": payload,
            "metadata": metadata,
        })
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()
        return oslo_messaging.NotificationResult.HANDLED


def _method(priority):
    def handle(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._write(priority, ctxt, publisher_id, event_type, payload, metadata)
    return handle


for _p in ("audit", "debug", "info", "warn", "error", "critical", "sample"):
    setattr(Endpoint, _p, _method(_p))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--exchange", default="watcher")
    ap.add_argument("--topic", default="notifications")
    ap.add_argument("--durable", action="store_true")
    ap.add_argument("--ssl-ca")
    args = ap.parse_args()

    conf = cfg.ConfigOpts()
    conf([], project="sextant-test")
    transport = oslo_messaging.get_notification_transport(conf, url=args.url)
    if args.durable:
        conf.set_override("amqp_durable_queues", True, group="oslo_messaging_rabbit")
    if args.ssl_ca:
        conf.set_override("ssl", True, group="oslo_messaging_rabbit")
        conf.set_override("ssl_ca_file", args.ssl_ca, group="oslo_messaging_rabbit")
    targets = [oslo_messaging.Target(topic=args.topic, exchange=args.exchange)]
    out = open(args.out, "a", encoding="utf-8")
    listener = oslo_messaging.get_notification_listener(
        transport, targets, [Endpoint(out)], executor="threading")
    # One dispatching thread: lines are written in the order received (the
    # pool's default would dispatch concurrently).
    conf.set_override("executor_thread_pool_size", 1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    listener.start()
    with open(args.ready, "w", encoding="utf-8") as f:
        f.write("ready\n")
    stop.wait()
    listener.stop()
    listener.wait()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
