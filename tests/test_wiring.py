"""The backend the wiring picks: with [database] url the token ledger and the operations
log live in a real PostgreSQL database (the session's server); `tsa serve` refuses a
database whose schema it does not know, `tsa db upgrade` migrates it (idempotently), and
every token a client gets is in the database before its answer, verifiable with openssl."""

from __future__ import annotations

import subprocess

import pytest
from asn1crypto import tsp

from ledger.store.postgres import SCHEMA_VERSION, PostgresReader
from tests.support.certified import openssl_verify
from tests.support.queries import make_request
from tests.support.tsa import TSA_BIN, TsaServer


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
