"""Where the server's state lives, picked from the configuration: the token ledger and
the operations log, the accounts and evidence tables and the names registry, in SQLite
files or in the [database] PostgreSQL database (migrated by `migrate_database`), and the
listing of this node's logs there for every node to serve (issue 16)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path

from ledger.store.base import Reader, Store
from ledger.store.sqlite import SqliteReader, SqliteStore
from tsa_server.config import Config
from tsa_server.database import Database, database_errors
from tsa_server.errors import ConfigError
from tsa_server.evidence.blobs import BlobStore, FileBlobStore
from tsa_server.evidence.store import EvidenceStore
from tsa_server.issuance.opslog import OpsLog


def open_ledger(config: Config, log: str) -> tuple[Store, Callable[[], Reader]]:
    """The writer of this node's ledger log `log` ("tokens" or "ops") and how to open
    more readers of it: in the [database] PostgreSQL database when one is configured,
    under the log's name there (`[ledger] unit`; its schema must be this code's: `tsa
    db upgrade` migrates it), else in its SQLite file."""
    url = config.database.url
    if url:
        # psycopg is imported only by servers that use it (it costs ~10 MiB of memory).
        from ledger.store.postgres import PostgresStore

        name = config.ledger.log_names[log]
        store: Store = PostgresStore(
            url, name, migrate=False, lease_seconds=config.database.lease_seconds
        )
    else:
        store = SqliteStore(config.ledger.path if log == "tokens" else config.ledger.ops_path)
    return store, functools.partial(open_reader, config, log)


def open_reader(config: Config, log: str) -> Reader:
    """A reader of this node's ledger log `log` ("tokens" or "ops"); it never writes, so
    tools may open one beside a running server."""
    if config.database.url:
        from ledger.store.postgres import PostgresReader

        return PostgresReader(config.database.url, config.ledger.log_names[log])
    return SqliteReader(config.ledger.path if log == "tokens" else config.ledger.ops_path)


def publish_logs(config: Config, vkeys: dict[str, str], chain_pem: bytes, ops: OpsLog) -> None:
    """List this node's logs ("tokens" and "ops" -> their checkpoint verifier keys) in
    the shared database (GET /ledger/ on every node), and record in the operations log
    each listing that is new or changed."""
    from ledger.store.base import PublishedLog
    from ledger.store.postgres_published import publish

    origins = {"tokens": config.ledger.origin, "ops": config.ledger.ops_origin}
    for kind, vkey in vkeys.items():
        entry = PublishedLog(
            config.ledger.log_names[kind],
            kind,
            config.ledger.unit,
            origins[kind],
            vkey,
            chain_pem.decode() if kind == "tokens" else "",
        )
        if publish(config.database.url, entry):
            ops.record(
                "log_listed",
                log=entry.name,
                log_kind=kind,
                unit=entry.unit,
                origin=entry.origin,
                vkey=entry.vkey,
                certificate_sha256=hashlib.sha256(entry.certificate.encode()).hexdigest(),
            )


def open_evidence_store(config: Config) -> EvidenceStore:
    """The accounts and evidence tables: in the [database] PostgreSQL database when one
    is configured (its schema must be this code's: `tsa db upgrade` migrates it), else
    in the [evidence] path SQLite file (made on first use)."""
    url = config.database.url
    try:
        if url:
            from ledger.store.postgres_schema import SchemaVersionError
            from tsa_server.database.postgres import PostgresDatabase
            from tsa_server.evidence.schema_postgres import EVIDENCE

            try:
                return EvidenceStore(PostgresDatabase(url, EVIDENCE, migrate=False), owns=True)
            except SchemaVersionError as exc:
                raise ConfigError(str(exc)) from None
        return EvidenceStore(config.evidence.path)
    except database_errors() as exc:
        where = "[database] url" if url else f"[evidence] path {config.evidence.path}"
        raise ConfigError(f"cannot open the evidence database ({where}): {exc}") from None


def blobs_in_database(config: Config) -> bool:
    """Are the stored originals in the [database] PostgreSQL database? ([evidence]
    blob_backend: "database", or "auto" with [database] url set; else the blobs dir.)"""
    backend = config.evidence.blob_backend
    return backend == "database" or (backend == "auto" and bool(config.database.url))


def open_blobs(config: Config, *, sweep: bool = True) -> BlobStore:
    """The store of originals: chunks in the [database] PostgreSQL database, which every
    node reaches (its schema must be this code's), or the [evidence] blobs directory.
    `sweep`: delete what uploads a dead process left behind (the server, at start)."""
    conf = config.evidence
    if blobs_in_database(config):
        from ledger.store.postgres_schema import SchemaVersionError
        from tsa_server.evidence.blobs_postgres import PostgresBlobStore

        try:
            store = PostgresBlobStore(config.database.url, max_bytes=conf.max_upload_bytes)
            try:
                if sweep:
                    store.sweep_temp()
            except BaseException:
                store.close()
                raise
            return store
        except SchemaVersionError as exc:
            raise ConfigError(str(exc)) from None
        except database_errors() as exc:
            raise ConfigError(f"cannot open the stored originals ([database] url): {exc}") from None
    try:
        blobs = FileBlobStore(conf.blobs, max_bytes=conf.max_upload_bytes)
        if sweep:
            blobs.sweep_temp()
    except OSError as exc:
        raise ConfigError(f"[evidence] blobs: cannot use {conf.blobs}: {exc.strerror}") from None
    return blobs


def names_database(config: Config, *, migrate: bool = False) -> Path | Database:
    """Where the names registry's tables are: the [database] PostgreSQL database when
    one is configured, else the [names] path SQLite file."""
    url = config.database.url
    if not url:
        return Path(config.names.path)
    from ledger.store.postgres_schema import SchemaVersionError
    from tsa_server.database.postgres import PostgresDatabase
    from tsa_server.names.schema_postgres import NAMES

    try:
        return PostgresDatabase(url, NAMES, migrate=migrate)
    except SchemaVersionError as exc:
        raise ConfigError(str(exc)) from None
    except database_errors() as exc:
        raise ConfigError(f"cannot open the names database ([database] url): {exc}") from None


def migrate_database(url: str) -> int:
    """Apply the migrations the [database] PostgreSQL database lacks, for every store
    kept there (idempotent); the number applied."""
    from ledger.store.postgres_schema import LEDGER, migrate
    from tsa_server.evidence.schema_postgres import EVIDENCE
    from tsa_server.names.schema_postgres import NAMES

    return sum(migrate(url, schema) for schema in (LEDGER, EVIDENCE, NAMES))
