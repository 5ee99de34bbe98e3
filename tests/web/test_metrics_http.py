"""Prometheus metrics (issue 17 item 2) from the real server, scraped while clients send
time-stamp requests and parsed with prometheus_client's own text parser: the counts agree
with what the clients got, labels stay bounded, and the page is reachable without a key
only on the metrics listener of its own (on the main listener: operators' admin keys)."""

from __future__ import annotations

import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.accounts.test_http import tsa_accounts
from tests.support.queries import failure_of, make_request
from tests.support.tsa import free_port

pytestmark = pytest.mark.both_backends


def scrape(url: str, headers: dict | None = None) -> dict:
    """name -> list of (labels, value) of every sample on the page."""
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=")
        text = reply.read().decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    found = [
        v for got, v in samples.get(name, []) if all(got.get(k) == w for k, w in labels.items())
    ]
    assert len(found) == 1, f"{name} {labels}: {samples.get(name)}"
    return found[0]


def test_metrics_under_load_agree_with_the_clients(make_server, tmp_path) -> None:
    metrics_port = free_port()
    server = make_server(
        metrics={"host": "127.0.0.1", "port": metrics_port},
        evidence={"path": str(tmp_path / "e.sqlite"), "blobs": str(tmp_path / "blobs")},
    ).start()
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    before = scrape(url)
    assert value(before, "tsa_tokens_granted_total") == 0

    good = [make_request(b"load %d" % i) for i in range(120)]
    sha1 = [make_request(b"old %d" % i, hash_name="sha1") for i in range(7)]
    policy = [make_request(b"p %d" % i, policy="1.2.3.4.5") for i in range(5)]
    outcomes: list[str] = []
    scrapes: list[dict] = []
    stop = threading.Event()

    def scraper() -> None:
        while not stop.is_set():
            scrapes.append(scrape(url))

    def send(body: bytes) -> str:
        status, _, reply = server.post_query(body, "/tsr")
        assert status == 200
        return failure_of(reply)[0]

    watcher = threading.Thread(target=scraper)
    watcher.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(send, good + sha1 + policy))
    finally:
        stop.set()
        watcher.join()
    assert scrapes, "no scrape completed during the load"
    assert outcomes.count("granted") == len(good)

    after = scrape(url)
    assert value(after, "tsa_tokens_granted_total") == len(good)
    assert value(after, "tsa_tokens_rejected_total", fail_info="badAlg") == len(sha1)
    assert value(after, "tsa_tokens_rejected_total", fail_info="unacceptedPolicy") == len(policy)
    assert value(after, "tsa_tokens_rejected_total", fail_info="systemFailure") == 0
    sent = len(good) + len(sha1) + len(policy)
    assert (
        value(after, "tsa_http_request_duration_seconds_count", route="/tsr", method="POST") == sent
    )
    assert value(after, "tsa_http_responses_total", route="/tsr", method="POST", code="2xx") == sent
    # Every signed batch and commit is seen; batches hold the granted requests.
    assert value(after, "tsa_issuance_batch_size_sum") == len(good)
    assert value(after, "tsa_issuance_signing_duration_seconds_count") >= 1
    assert value(after, "tsa_ledger_commit_duration_seconds_count") >= 1
    assert value(after, "tsa_ledger_committed_tokens_total") == len(good)
    assert value(after, "tsa_ledger_entries") == len(good)
    assert value(after, "tsa_issuance_batches_in_flight") == 0
    assert value(after, "tsa_hsm_errors_total") == 0
    assert value(after, "tsa_clock_usable") == 1
    assert 0 < value(after, "tsa_clock_error_bound_seconds") < 1
    assert 0 <= value(after, "tsa_clock_last_sample_age_seconds") < 10
    assert "tsa_clock_offset_seconds" in after
    for log in ("tokens", "ops"):
        assert value(after, "tsa_ledger_checkpoint_age_seconds", log=log) < 60
    assert value(after, "tsa_deposits_total") == 0
    assert value(after, "tsa_webhook_backlog") == 0
    assert "process_resident_memory_bytes" in after


def test_labels_are_route_patterns(make_server) -> None:
    metrics_port = free_port()
    server = make_server(metrics={"host": "127.0.0.1", "port": metrics_port}).start()
    for serial in ("0a1b2c", "ffff", "123456789abcdef"):
        server.get(f"/tokens/{serial}")
    server.get("/no/such/path/42")
    server.request("BREW", "/")
    samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    routes = {labels["route"] for labels, _ in samples["tsa_http_request_duration_seconds_count"]}
    methods = {labels["method"] for labels, _ in samples["tsa_http_request_duration_seconds_count"]}
    assert "/tokens/{serial}" in routes and "unmatched" in routes
    assert not any("0a1b2c" in r or "42" in r for r in routes), routes
    assert "BREW" not in methods and "other" in methods
    assert (
        value(
            samples,
            "tsa_http_request_duration_seconds_count",
            route="/tokens/{serial}",
            method="GET",
        )
        == 3
    )


def test_metrics_on_the_main_listener_need_an_operator_admin_key(make_server, tmp_path) -> None:
    server = make_server(
        evidence={"path": str(tmp_path / "e.sqlite"), "blobs": str(tmp_path / "blobs")}
    )
    operator = tsa_accounts(server, "create-org", "Operator")
    customer = tsa_accounts(server, "create-org", "A customer")
    server.reconfigure("evidence", operators=[operator])
    server.start()
    admin = tsa_accounts(
        server, "create-key", "--org", operator, "--role", "owner", "--scope", "admin"
    )
    reader = tsa_accounts(server, "create-key", "--org", operator, "--scope", "read")
    customer_admin = tsa_accounts(
        server, "create-key", "--org", customer, "--role", "owner", "--scope", "admin"
    )
    status, headers, _ = server.get("/metrics")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    for key in (reader, customer_admin):
        status, _, body = server.request(
            "GET", "/metrics", None, {"Authorization": f"Bearer {key}"}
        )
        assert status == 403, body
        assert "error" in json.loads(body)
    samples = scrape(server.url + "metrics", {"Authorization": f"Bearer {admin}"})
    assert "tsa_tokens_granted_total" in samples
