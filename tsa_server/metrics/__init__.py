"""Prometheus metrics of one server process (prometheus-client), in a registry of its
own: `instruments.py` holds what is observed as it happens (request latencies per route,
batch sizes, signing and commit durations, signer failures), `collector.py` what is read
when Prometheus scrapes (tokens granted and refused by failInfo, batches in flight, the
clock, the ledgers and their checkpoints, deposits, credits, webhook backlog).

Every label takes a bounded set of values: routes are the route table's patterns (never
a path with an id in it), methods and status classes are few, failInfo and log names are
fixed. The web layer serves them (web/metrics.py).
"""
