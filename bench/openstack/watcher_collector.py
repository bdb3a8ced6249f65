"""Watcher 17.0.0's own Nova collector, run once for `sextant-bench openstack`.

Usage: python watcher_collector.py WATCHER_CONF

Builds the compute cluster data model with
watcher.decision_engine.model.collector.nova.NovaModelBuilder, as the
decision engine does for an audit with no scope (its thread pool of
`max_general_workers`, its Keystone session from [watcher_clients_auth],
Nova at [nova] api_version, Placement inventories per node), and prints one
JSON line: the seconds the build took (the connections to Nova and
Placement, Keystone's token included, are made inside it, as they are for
each audit), and the nodes and instances of the model.
"""

import json
import sys
import time
import warnings

warnings.simplefilter("ignore")

from oslo_config import cfg  # noqa: E402

import watcher.conf  # noqa: E402,F401  (registers every option)
from watcher.decision_engine.model.collector import nova  # noqa: E402


def main():
    cfg.CONF(["--config-file", sys.argv[1]], project="watcher")
    t0 = time.monotonic()
    builder = nova.NovaModelBuilder()
    model = builder.execute([])
    secs = time.monotonic() - t0
    nodes = model.get_all_compute_nodes()
    instances = model.get_all_instances()
    print(json.dumps({
        "seconds": secs,
        "nodes": len(nodes),
        "instances": len(instances),
        "hostnames": sorted({n.hostname for n in nodes.values()}),
    }))


if __name__ == "__main__":
    main()
