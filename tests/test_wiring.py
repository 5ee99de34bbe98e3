"""The backend the wiring picks: with [database] url the token ledger, the operations
log, the accounts and the evidence tables live in a real PostgreSQL database (the
session's server); `tsa serve` refuses a
database whose schema it does not know, `tsa db upgrade` migrates it (idempotently), and
every token a client gets is in the database before its answer, verifiable with openssl."""

from __future__ import annotations

import hashlib
import json
import subprocess

import psycopg
import pytest
from asn1crypto import tsp

from ledger.store.postgres import SCHEMA_VERSION, PostgresReader
from tests.support.certified import openssl_verify
from tests.support.queries import make_request
from tests.support.tsa import TSA_BIN, TsaServer
from tsa_server.database.postgres import PostgresDatabase
from tsa_server.evidence import client
from tsa_server.evidence.schema_postgres import EVIDENCE
from tsa_server.evidence.store import EvidenceStore


def tsa(server: TsaServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TSA_BIN, *args, "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def pg_server(make_server, postgres) -> TsaServer:
    return make_server(database={"url": postgres.create_database()})


def test_serve_refuses_an_unmigrated_database_until_db_upgrade(pg_server: TsaServer) -> None:
    with pytest.raises(RuntimeError, match="tsa db upgrade"):
        pg_server.start(timeout=30)
    first = tsa(pg_server, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert f"schema version {SCHEMA_VERSION}" in first.stdout and "(0 migration" not in first.stdout
    again = tsa(pg_server, "db", "upgrade")
    assert again.returncode == 0 and "(0 migration(s) applied)" in again.stdout
    pg_server.start(timeout=30)
    assert not pg_server.ledger_path.exists()  # nothing went to the SQLite default


def test_tokens_are_in_postgres_before_their_answer(pg_server: TsaServer, hsm, tmp_path) -> None:
    assert tsa(pg_server, "db", "upgrade").returncode == 0
    pg_server.start(timeout=30)
    url = pg_server.config_path.read_text().split('url = "')[1].split('"')[0]
    reader = PostgresReader(url, "tokens")
    try:
        for n in range(20):
            data = f"document {n}".encode()
            query = make_request(data, nonce=n + 1, cert_req=True)
            status, _, body = pg_server.post_query(query)
            assert status == 200
            token = tsp.TimeStampResp.load(body)["time_stamp_token"]
            serial = token["content"]["encap_content_info"]["content"].parsed["serial_number"]
            stored = reader.entry_by_serial(serial.native)
            assert stored is not None and stored.token == token.dump()
        assert reader.size() == 20
        (tmp_path / "last.tsr").write_bytes(body)
        (tmp_path / "last.data").write_bytes(data)
        openssl_verify(tmp_path / "last.data", tmp_path / "last.tsr", hsm.ca_file)
    finally:
        reader.close()
    ops = PostgresReader(url, "ops")
    try:
        assert ops.size() >= 1  # the start event
    finally:
        ops.close()


FORM = {"depositor": "张三 (Zhang San)", "work_content": "a product photo", "statement": "mine"}


def test_evidence_and_accounts_live_in_postgres(pg_server: TsaServer, tmp_path) -> None:
    """The CLI and the server keep organisations, keys, credits and items in [database]:
    what one writes the other sees, and nothing goes to the [evidence] SQLite file."""
    assert tsa(pg_server, "init").returncode == 0  # migrates every store's schema
    pg_server.start(timeout=30)
    org = tsa(pg_server, "accounts", "create-org", "PG shop").stdout.strip()
    made = tsa(pg_server, "accounts", "create-key", "--org", org, "--scope", "deposit,read")
    key = made.stdout.strip()
    assert made.returncode == 0 and key.startswith("tsa_"), made.stderr
    granted = tsa(pg_server, "fees", "grant", "--org", org, "--units", "2", "--key", "order-1")
    assert granted.returncode == 0, granted.stderr

    def deposit(text: str) -> tuple[int, dict]:
        body = json.dumps({"sha256": hashlib.sha256(text.encode()).hexdigest(), **FORM})
        status, _, raw = client.call(
            pg_server.url,
            key,
            "POST",
            "/api/v1/deposits",
            body.encode(),
            {"Content-Type": "application/json"},
        )
        return status, json.loads(raw)

    assert deposit("first")[0] == 201 and deposit("second")[0] == 201
    status, refused = deposit("third")  # the credits are spent
    assert status == 402, refused

    url = pg_server.config_path.read_text().split('url = "')[1].split('"')[0]
    # The database drops every session (a failover, a restart): a request meeting a dead
    # connection is a 503 to retry, never a 500, and the next one reconnects.
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    statuses = [client.call(pg_server.url, key, "GET", "/api/v1/items")[0] for _ in range(6)]
    assert set(statuses) <= {200, 503} and statuses[-1] == 200, statuses
    store = EvidenceStore(PostgresDatabase(url, EVIDENCE, migrate=False), owns=True)
    try:
        assert store.count_items(org) == 2
        assert sum(e.units for e in store.credit_entries(org) if e.kind == "purchase") == 2
        assert store.verify_credit_chain() == len(store.credit_entries(org))
    finally:
        store.close()
    assert not (tmp_path / "evidence.sqlite").exists()
    assert not list(pg_server.workdir.rglob("evidence.sqlite"))
