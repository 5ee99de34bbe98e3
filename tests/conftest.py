"""Shared pytest fixtures: a SoftHSM token, a real NTP responder, a running TSA."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.databases import ENGINES, EngineDatabase
from tests.support.ntp import NtpResponder, ntp_responder
from tests.support.postgres import PostgresNotInstalled, PostgresServer
from tests.support.tsa import Hsm, TsaServer, make_hsm


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's SoftHSM2 configuration, shared by every token the tests make."""
    return tmp_path_factory.mktemp("softhsm") / "softhsm2.conf"


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory, softhsm_conf: Path) -> Hsm:
    """A SoftHSM token with an EC P-256 TSA key, a development CA and its chain."""
    return make_hsm(tmp_path_factory.mktemp("hsm"), softhsm_conf)


@pytest.fixture(scope="session")
def session_ntp() -> Iterator[NtpResponder]:
    """A real NTP server on loopback, in sync, shared by the session's servers."""
    with ntp_responder() as responder:
        yield responder


@pytest.fixture
def ntp() -> Iterator[NtpResponder]:
    """A real NTP server on loopback that one test may break (offset, silence...)."""
    with ntp_responder() as responder:
        yield responder


def _shared_server(root: Path, hsm: Hsm, ntp: NtpResponder, **overrides: dict) -> TsaServer:
    # It lives through the whole suite, whose heaviest tests can starve the responder
    # thread of this process for seconds: a longer last-good-sample age keeps it issuing.
    return TsaServer(root, hsm, ntp.address, clock={"max_age_s": 30.0}, **overrides).start()


@pytest.fixture(scope="session")
def tsa_sqlite(
    tmp_path_factory: pytest.TempPathFactory, hsm: Hsm, session_ntp: NtpResponder
) -> Iterator[TsaServer]:
    """The real server (`tsa serve`) on its embedded defaults, shared by the tests that
    only talk to it."""
    server = _shared_server(tmp_path_factory.mktemp("tsa"), hsm, session_ntp)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tsa_postgresql(
    tmp_path_factory: pytest.TempPathFactory,
    hsm: Hsm,
    session_ntp: NtpResponder,
    postgres: PostgresServer,
) -> Iterator[TsaServer]:
    """The same shared server with everything it stores in PostgreSQL (started on first
    use: by the first test of a `both_backends` module run on PostgreSQL)."""
    server = _shared_server(
        tmp_path_factory.mktemp("tsa-pg"), hsm, session_ntp, database=postgres_database(postgres)
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this module's servers: "sqlite" unless the module is marked
    `both_backends` (then its tests run once on each, pytest_generate_tests)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="module")
def tsa(backend: str, request: pytest.FixtureRequest) -> TsaServer:
    """The shared running server of this module's backend."""
    server: TsaServer = request.getfixturevalue(f"tsa_{backend}")
    return server


@pytest.fixture(scope="module")
def on_backend(backend: str, request: pytest.FixtureRequest) -> Callable[[], dict]:
    """For fixtures that make their own `TsaServer`: the overrides that put one server's
    state on this module's backend (a new PostgreSQL schema for each call)."""

    def overrides() -> dict:
        if backend == "sqlite":
            return {}
        return {"database": postgres_database(request.getfixturevalue("postgres"))}

    return overrides


def postgres_database(postgres: PostgresServer) -> dict:
    """A [database] section naming a new schema of its own, migrated as `tsa db upgrade`
    would (a server refuses a schema it does not know)."""
    from tsa_server.wiring.databases import migrate_database

    url = postgres.create_schema()
    migrate_database(url)
    return {"url": url}


@pytest.fixture
def make_server(tmp_path: Path, hsm: Hsm, ntp: NtpResponder, on_backend: Callable[[], dict]):
    """Factory for a server of one test's own (own ledger, own NTP responder), on this
    module's backend unless the test names a [database] itself."""
    servers: list[TsaServer] = []

    def make(**overrides) -> TsaServer:
        if "database" not in overrides:
            overrides.update(on_backend())
        server = TsaServer(tmp_path / f"s{len(servers)}", hsm, ntp.address, **overrides)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def hsm_config(hsm: Hsm, tmp_path_factory: pytest.TempPathFactory):
    """A Config for in-process tests on the session token (ledger path per test below)."""
    from tests.support.tsa import write_config
    from tsa_server.config import load_config

    path = write_config(
        tmp_path_factory.mktemp("cfg") / "tsa.toml",
        {"pkcs11": hsm.pkcs11, "certificates": hsm.certificates},
    )
    return load_config(path)


@pytest.fixture(scope="session")
def signer(hsm_config):
    """The session token's TSA key as a Pkcs11Signer."""
    from tsa_server.signing.pkcs11 import Pkcs11Signer
    from tsa_server.wiring import token_location

    key = Pkcs11Signer(token_location(hsm_config), hsm_config.pkcs11.key_label)
    yield key
    key.close()


# PostgreSQL: one real server per session, started on first use only (runs that never
# touch PostgreSQL never start it); without it installed, the tests that need it fail
# with a message naming `scripts/bootstrap --test`.


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session, stopped (fast) at its end."""
    try:
        server = PostgresServer()
    except PostgresNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty schema of this test's own (in a shared database)."""
    return postgres.create_schema()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking `engine_db` runs on both engines, unless it also takes `db_path`:
    then it is about the SQLite file itself (its mode, its bytes, its migrations). A test
    of a module marked `both_backends` that talks to a server (`tsa`, `make_server`) runs
    once with everything on SQLite and once on PostgreSQL (but for a test marked
    `one_backend`: what it checks is not stored)."""
    if "engine_db" in metafunc.fixturenames:
        engines = ["sqlite"] if "db_path" in metafunc.fixturenames else list(ENGINES)
        metafunc.parametrize("engine_db", engines, indirect=True)
    definition = metafunc.definition
    if (
        definition.get_closest_marker("both_backends")
        and not definition.get_closest_marker("one_backend")
        and "backend" in metafunc.fixturenames
    ):
        metafunc.parametrize("backend", list(ENGINES), indirect=True, scope="module")


@pytest.fixture
def engine_db(request: pytest.FixtureRequest, tmp_path: Path) -> EngineDatabase:
    """The evidence tables on the engine of this run of the test (pytest_generate_tests)."""
    if request.param == "sqlite":
        return EngineDatabase("sqlite", str(tmp_path / "evidence.sqlite"))
    server: PostgresServer = request.getfixturevalue("postgres")
    return EngineDatabase("postgresql", server.create_schema())


@pytest.fixture
def postgres_database_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database of this test's own."""
    return postgres.create_database()
