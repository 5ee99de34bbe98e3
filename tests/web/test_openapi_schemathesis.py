"""schemathesis against the OpenAPI document a real `tsa serve` serves: every operation,
positive and negative examples (bounded), with an owner key of an operator organisation
that holds credits and an item, must never get a 5xx. And every /api/v1 route of the
server is described in the document."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from tests.support.tsa import TsaServer
from tests.web.test_evidence_http import FORM, Api, sha, tsa
from tsa_server.web.routes import add_routes

#: Per operation and generation mode: the whole run stays well under a minute. A deeper
#: run: TSA_SCHEMATHESIS_EXAMPLES=200.
EXAMPLES = int(os.environ.get("TSA_SCHEMATHESIS_EXAMPLES", "20"))


@pytest.fixture
def server(make_server, tmp_path: Path) -> tuple[TsaServer, Api]:
    running = make_server(
        evidence={
            "path": str(tmp_path / "evidence.sqlite"),
            "blobs": str(tmp_path / "blobs"),
            "rate_per_second": 0,  # schemathesis calls fast with one key: no 429s here
        }
    )
    org = tsa(running, "accounts", "create-org", "Operator")
    text = running.config_path.read_text().replace(
        "[evidence]\n", f'[evidence]\noperators = ["{org}"]\n'
    )
    running.config_path.write_text(text)
    key = tsa(
        running,
        "accounts",
        "create-key",
        "--org",
        org,
        "--role",
        "owner",
        "--scope",
        "admin,read,deposit,timestamp",
    )
    tsa(running, "fees", "grant", "--org", org, "--units", "1000", "--key", "fuzz")
    running.start()
    api = Api(running, key, org)
    assert api.deposit(sha(b"an item to look at"))[0] == 201
    status, body = api.upload(FORM, [("stored.txt", [b"a stored original"])])
    assert status == 201
    return running, api


def test_every_api_route_is_documented(server) -> None:
    running, _ = server
    document = json.loads(running.get("api/v1/openapi.json")[2])
    app = web.Application()
    add_routes(app)
    missing = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if not path.startswith("/api/v1/") or route.method == "HEAD":
            continue
        operation = document["paths"].get(path, {}).get(route.method.lower())
        if operation is None:
            missing.append(f"{route.method} {path}")
        elif operation.get("security"):
            assert "401" in operation["responses"], path
    assert not missing, missing


def _takes_input(operation) -> bool:
    """Whether the operation has parameters or a body (what negative cases change)."""
    return any(True for _ in operation.iter_parameters()) or bool(
        operation.get_request_payload_content_types()
    )


def test_schemathesis_finds_no_server_error(server) -> None:
    running, api = server
    schema = schemathesis.openapi.from_url(running.url + "api/v1/openapi.json")
    base = running.url.rstrip("/")
    headers = {"Authorization": f"Bearer {api.key}"}
    failures: list[str] = []
    calls = 0
    started = time.monotonic()

    def make_check(operation, mode):
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=base, headers=headers, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{operation.label} [{mode.value}] -> {response.status_code}: "
                    f"{response.text[:200]} (body {str(case.body)[:200]})"
                )

        return check

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                make_check(operation, mode)()
            except Unsatisfiable:
                # An operation that takes no input (GET /policy) has no invalid input.
                if mode is schemathesis.GenerationMode.POSITIVE or _takes_input(operation):
                    raise
    elapsed = time.monotonic() - started
    print(f"schemathesis: {calls} calls in {elapsed:.1f} s")
    assert not failures, "\n".join(failures[:20])
    assert elapsed < 120 or EXAMPLES > 20
    assert "Traceback" not in running.log()
