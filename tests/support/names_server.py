"""A real server with the evidence layer and the handle registry on, its organisations
created and one of them made the registry's operator: what the names HTTP tests share."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def start_names_server(
    make_server, tmp_path: Path, org_names: tuple[str, ...], *, policy: Path | None = None
):
    """Start the server; return it and {name: organisation id}. The last name is the
    operator organisation ([names] operators)."""
    from tests.accounts.test_http import tsa_accounts

    server = make_server(
        evidence={"path": str(tmp_path / "evidence.sqlite"), "blobs": str(tmp_path / "blobs")},
        names={
            "path": str(tmp_path / "names.sqlite"),
            "policy": str(policy or REPO / "conf/names.toml"),
        },
    )
    orgs = {n: tsa_accounts(server, "create-org", n) for n in org_names}
    # the operator organisation is known only now
    server.reconfigure("names", operators=[orgs[org_names[-1]]])
    server.start()
    return server, orgs
