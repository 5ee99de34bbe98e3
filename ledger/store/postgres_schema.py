"""The PostgreSQL ledger schema: versioned migrations, the append-only triggers, connecting.

Several logs share one database, told apart by a plain text key (`log`) in every table.
The tables live in the connection's current schema (the first of its `search_path`), so
one database can also hold unrelated ledgers in different schemas.
`migrate(url)` applies the migrations the database lacks, each in its own transaction,
serialized across processes by an advisory lock, and records them in `schema_version`;
it is idempotent and refuses a database whose version is newer than this code knows.
Readers and stores only check the version (`check_version`). docs/spec/ledger.md,
"PostgreSQL, the shared store", describes the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ledger.errors import LedgerError

# Each migration is one transaction; its index + 1 is the version it brings the schema to.
# Never edit a migration once released: add the next one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE ledger_logs (
        log text PRIMARY KEY CHECK (log <> '' AND length(log) <= 200),
        next_idx bigint NOT NULL DEFAULT 0,
        last_gen_time bigint NOT NULL DEFAULT 0,
        epoch bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE ledger_entries (
        log text NOT NULL REFERENCES ledger_logs (log),
        idx bigint NOT NULL CHECK (idx >= 0),
        token bytea NOT NULL,
        gen_time bigint NOT NULL,
        serial numeric NOT NULL CHECK (scale(serial) = 0),
        imprint_alg text,
        imprint bytea,
        leaf_hash bytea NOT NULL CHECK (octet_length(leaf_hash) = 32),
        chain_hash bytea NOT NULL CHECK (octet_length(chain_hash) = 32),
        PRIMARY KEY (log, idx)
    );
    CREATE UNIQUE INDEX ledger_entries_serial ON ledger_entries (log, serial);
    CREATE INDEX ledger_entries_gen_time ON ledger_entries (log, gen_time, idx);
    CREATE INDEX ledger_entries_imprint ON ledger_entries (log, imprint, idx);
    CREATE INDEX ledger_entries_leaf_hash ON ledger_entries (log, leaf_hash, idx);
    CREATE TABLE ledger_nodes (
        log text NOT NULL REFERENCES ledger_logs (log),
        level integer NOT NULL CHECK (level > 0),
        idx bigint NOT NULL CHECK (idx >= 0),
        hash bytea NOT NULL CHECK (octet_length(hash) = 32),
        PRIMARY KEY (log, level, idx)
    );
    CREATE TABLE ledger_checkpoints (
        log text NOT NULL REFERENCES ledger_logs (log),
        size bigint NOT NULL CHECK (size >= 0),
        root bytea NOT NULL,
        chain_head bytea NOT NULL,
        note text NOT NULL,
        signed_at bigint,
        PRIMARY KEY (log, size)
    );

    CREATE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
    END $$;
    CREATE TRIGGER entries_no_update BEFORE UPDATE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('ledger entries are append-only');
    CREATE TRIGGER entries_no_delete BEFORE DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('ledger entries are append-only');
    CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('ledger entries are append-only');
    CREATE TRIGGER nodes_no_update BEFORE UPDATE ON ledger_nodes
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('tree nodes are append-only');
    CREATE TRIGGER nodes_no_delete BEFORE DELETE ON ledger_nodes
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('tree nodes are append-only');
    CREATE TRIGGER nodes_no_truncate BEFORE TRUNCATE ON ledger_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('tree nodes are append-only');
    CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('signed checkpoints are archived, never changed');
    CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('signed checkpoints are archived, never changed');
    CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT
    EXECUTE FUNCTION ledger_refuse('signed checkpoints are archived, never changed');
    CREATE TRIGGER logs_no_delete BEFORE DELETE ON ledger_logs
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse('the sequence row is permanent');
    CREATE TRIGGER logs_no_truncate BEFORE TRUNCATE ON ledger_logs
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('the sequence row is permanent');

    -- Contiguous indices and non-decreasing genTime (VOLATILE: each row sees the rows
    -- inserted before it by the same statement).
    CREATE FUNCTION ledger_entries_check() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        prev_idx bigint;
        prev_gen bigint;
    BEGIN
        SELECT idx, gen_time INTO prev_idx, prev_gen FROM ledger_entries
        WHERE log = NEW.log ORDER BY idx DESC LIMIT 1;
        IF NEW.idx <> COALESCE(prev_idx + 1, 0) THEN
            RAISE EXCEPTION 'ledger indices must be contiguous'
            USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF NEW.gen_time < prev_gen THEN
            RAISE EXCEPTION 'genTime must not decrease'
            USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER entries_contiguous BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_check();

    CREATE FUNCTION ledger_logs_forward() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.log <> OLD.log OR NEW.epoch < OLD.epoch OR NEW.next_idx < OLD.next_idx THEN
            RAISE EXCEPTION 'the sequence only moves forward'
            USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER logs_forward BEFORE UPDATE ON ledger_logs
    FOR EACH ROW EXECUTE FUNCTION ledger_logs_forward();

    -- The compare-and-swap of checkpoint signing (L-08/L-12): the transaction lock makes
    -- two concurrent archivers of one log take turns, so the second sees the first's row.
    CREATE FUNCTION ledger_checkpoints_advance() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(
            hashtextextended('ledger-checkpoints:' || TG_TABLE_SCHEMA || ':' || NEW.log, 0));
        IF NEW.size <= (SELECT COALESCE(MAX(size), -1) FROM ledger_checkpoints
                        WHERE log = NEW.log) THEN
            RAISE EXCEPTION 'a checkpoint must be larger than the last one'
            USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER checkpoints_advance BEFORE INSERT ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_checkpoints_advance();
    """,
    # 2 (issue 16): several nodes, each writing its own logs. Serial epochs come from one
    # sequence, so two logs never share an epoch (a token's serial is 2^120 | epoch << 64
    # | counter); a log's writer holds a lease that it renews, and a takeover needs the
    # lease expired or its holder's session gone (ledger/store/postgres_lease.py).
    """
    CREATE SEQUENCE ledger_epochs;
    SELECT setval('ledger_epochs', (SELECT COALESCE(MAX(epoch), 0) + 1 FROM ledger_logs), false);
    ALTER TABLE ledger_logs
        ADD COLUMN lease_holder text,
        ADD COLUMN lease_until timestamptz,
        ADD COLUMN lease_pid integer,
        ADD COLUMN lease_session_start timestamptz;
    """,
    # 3 (issue 16): the logs the TSA publishes, whichever node writes them, so that every
    # node lists and serves them all (ledger/store/postgres_published.py).
    """
    CREATE TABLE ledger_published (
        log text PRIMARY KEY REFERENCES ledger_logs (log),
        kind text NOT NULL CHECK (kind IN ('tokens', 'ops')),
        unit text NOT NULL,
        origin text NOT NULL UNIQUE,
        vkey text NOT NULL,
        certificate text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

Connection = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class Schema:
    """A named, versioned set of migrations in one database: the ledger's (here) and the
    server's other stores' (tsa_server/database/postgres.py). Each records its applied
    migrations in its own table and migrates under its own advisory lock; lock keys
    name the PostgreSQL schema, so sets in two schemas of a database are distinct."""

    name: str
    migrations: tuple[str, ...]
    version_table: str

    @property
    def version(self) -> int:
        return len(self.migrations)


LEDGER = Schema("ledger", MIGRATIONS, "schema_version")


class SchemaVersionError(LedgerError):
    """The database's schema is not the one this code reads and writes."""


def describe(url: str) -> str:
    """The database a URL names, for messages (never the password)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return "<unparsable PostgreSQL URL>"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"postgresql database {params.get('dbname') or '?'} on {host}:{port}"


def connect(url: str) -> Connection:
    """A connection with autocommit off: every read and write runs in an explicit
    transaction (`with conn.transaction()`) that ends before the method returns."""
    return psycopg.connect(url, autocommit=False)


def end_idle_transactions(conn: Connection, seconds: float) -> None:
    """Have the server end this session when it sits idle inside a transaction for
    `seconds`: a writer paused (SIGSTOP, a partition) between two statements of a write
    would otherwise hold its row or advisory locks, and so block its replacement, for
    as long as it stays paused."""
    conn.execute(
        "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
        (str(max(1000, int(seconds * 1000))),),
    )
    if not conn.autocommit:
        conn.commit()


def stored_version(conn: Connection, schema: Schema = LEDGER) -> int:
    """The database's version of `schema` (0 when it holds none of it)."""
    with conn.transaction():
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (schema.version_table,))
        found = exists.fetchone()
        if not found or not found[0]:
            return 0
        row = conn.execute(
            sql.SQL("SELECT COALESCE(MAX(version), 0) FROM {}").format(
                sql.Identifier(schema.version_table)
            )
        ).fetchone()
    return int(row[0]) if row else 0


def _newer(url: str, schema: Schema, version: int) -> SchemaVersionError:
    return SchemaVersionError(
        f"the {describe(url)} has {schema.name} schema version {version}, newer than this "
        f"code knows ({schema.version}): upgrade the TSA before opening it"
    )


def check_version(conn: Connection, url: str, schema: Schema = LEDGER) -> None:
    """Refuse a database whose version of `schema` is not exactly this code's."""
    version = stored_version(conn, schema)
    if version > schema.version:
        raise _newer(url, schema, version)
    if version < schema.version:
        raise SchemaVersionError(
            f"the {describe(url)} has {schema.name} schema version {version}, this code "
            f"needs {schema.version}: run the migrations (`tsa db upgrade`)"
        )


def migrate_connection(conn: Connection, url: str, schema: Schema = LEDGER) -> int:
    """Bring `schema` to its last version; returns the number of migrations applied."""
    table = sql.Identifier(schema.version_table)
    applied = 0
    while True:
        with conn.transaction():
            # one migrator at a time, across nodes
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended("
                "%s || '-migrate:' || current_schema(), 0))",
                (schema.name,),
            )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(table)
            )
            found = conn.execute(
                sql.SQL("SELECT COALESCE(MAX(version), 0) FROM {}").format(table)
            ).fetchone()
            version = int(found[0]) if found else 0
            if version > schema.version:
                raise _newer(url, schema, version)
            if version == schema.version:
                return applied
            conn.execute(schema.migrations[version].encode())
            conn.execute(
                sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(table), (version + 1,)
            )
            applied += 1


def migrate(url: str, schema: Schema = LEDGER) -> int:
    """Apply the migrations of `schema` the database at `url` lacks (idempotent); returns
    how many were applied. SchemaVersionError if the database is newer than this code."""
    try:
        with connect(url) as conn:
            return migrate_connection(conn, url, schema)
    except psycopg.Error as exc:
        raise LedgerError(f"cannot migrate the {describe(url)}: {exc}") from None
