"""The only place URLs are spelled."""

from __future__ import annotations

from aiohttp import web

from tsa_server.web import (
    accounts,
    evidence,
    handlers,
    incidents,
    members,
    metrics,
    openapi,
    policy,
)
from tsa_server.web.evidence import files as evidence_files
from tsa_server.web.ledger import catalog as ledger_catalog
from tsa_server.web.ledger import logs as ledger
from tsa_server.web.ledger import lookup as ledger_lookup
from tsa_server.web.names import policy as names_policy
from tsa_server.web.names import registry as names
from tsa_server.web.pages import (
    actions,
    assets,
    check,
    check_documents,
    deposit,
    files,
    signin,
    site,
    wallet,
)
from tsa_server.web.pages import names as name_page
from tsa_server.web.pages import names_actions as name_actions
from tsa_server.web.pages import names_brand as name_brand
from tsa_server.web.pages import organisation as organisation_page
from tsa_server.web.pages import organisation_keys as org_keys
from tsa_server.web.pages import organisation_people as org_people
from tsa_server.web.pages import signup as signup_page
from tsa_server.web.pages import stored as stored_page
from tsa_server.web.verify import handler as verify
from tsa_server.web.verify import page as verify_page


def add_routes(app: web.Application) -> None:
    app.add_routes(
        [
            web.post("/", handlers.timestamp, expect_handler=handlers.expect_query),
            web.post("/tsr", handlers.timestamp, expect_handler=handlers.expect_query),
            web.get("/", site.landing),  # the pages for people: web/pages/
            web.get("/static/{name}", assets.static),
            web.get("/lang/{lang}", site.switch_language),
            web.get("/signin", signin.signin_form),
            web.post("/signin", signin.signin),
            web.post("/signout", signin.signout),
            web.get("/account/password", signin.password_form),
            web.post("/account/password", signin.change_password),
            web.get("/check", check.check_form),
            web.post("/check", check.check),
            web.post("/check/certificate", check_documents.check_certificate),
            web.post("/check/kit", check_documents.check_kit),
            web.get("/files", files.listing),
            web.get("/files/{item_id}", files.detail),
            web.get("/files/{item_id}/delete-original", actions.delete_form),
            web.post("/files/{item_id}/delete-original", actions.delete_original),
            web.post("/files/{item_id}/auto-renew", actions.auto_renew),
            web.post("/files/{item_id}/reinstate", actions.reinstate),
            web.post("/files/{item_id}/reupload", actions.reupload),
            web.get("/files/{item_id}/{artefact}", files.download),
            web.get("/apply", deposit.apply_form),
            web.post("/apply/review", deposit.review),
            web.post("/apply", deposit.confirm),
            web.get("/apply/stored", stored_page.stored_form),
            web.post("/apply/precheck", stored_page.precheck),
            web.post("/apply/upload", stored_page.upload),
            web.get("/wallet", wallet.wallet),
            web.get("/name", name_page.name_page),
            web.get("/name/check", name_page.check),
            web.post("/name/apply", name_page.apply),
            web.get("/name/brand", name_brand.brand_form),
            web.post("/name/brand", name_brand.brand_apply),
            web.get("/name/{handle}/{action:change|release|reclaim}", name_actions.form),
            web.post("/name/{handle}/{action:change|release|reclaim}", name_actions.act),
            web.get("/organisation", organisation_page.settings),
            web.post("/organisation/people", org_people.add_person),
            web.post("/organisation/people/{member_id}/role", org_people.change_role),
            web.get("/organisation/people/{member_id}/remove", org_people.remove_form),
            web.post("/organisation/people/{member_id}/remove", org_people.remove_person),
            web.post("/organisation/keys", org_keys.create_key),
            web.post("/organisation/keys/{key_id}/revoke", org_keys.revoke_key),
            web.post("/organisation/webhook", org_keys.set_webhook),
            web.post("/organisation/webhook/remove", org_keys.remove_webhook),
            web.get("/signup", signup_page.signup_form),
            web.post("/signup", signup_page.signup),
            web.get("/certs", handlers.certs),
            web.get("/healthz", handlers.healthz),
            web.get("/readyz", handlers.readyz),
            web.get("/metrics", metrics.metrics),
            web.get("/policy", policy.policy),
            web.get("/policy.pdf", policy.policy_pdf),
            web.get("/tokens/{serial}", ledger_lookup.token_by_serial),
            web.get("/incidents/", incidents.listing),
            web.get("/incidents/{name}", incidents.incident_file),
            web.post("/verify", verify.verify),
            web.get("/verify/serial/{serial}", verify_page.serial_page),
            web.get("/api/v1/account", accounts.account),
            web.get("/api/v1/keys", accounts.list_keys),
            web.post("/api/v1/keys", accounts.create_key),
            web.delete("/api/v1/keys/{key_id}", accounts.revoke_key),
            web.get("/api/v1/members", members.list_members),
            web.post("/api/v1/members", members.add_member),
            web.put("/api/v1/members/{member_id}/role", members.set_role),
            web.delete("/api/v1/members/{member_id}", members.remove_member),
            web.get("/api/v1/openapi.json", openapi.document),
            web.post("/api/v1/credits/lots", evidence.grant_lot),
            web.get("/api/v1/credits", evidence.credits),
            web.post("/api/v1/deposits", evidence.deposit),
            web.post("/api/v1/deposits/upload", evidence.upload),
            web.get("/api/v1/items", evidence.list_items),
            web.get("/api/v1/items/{item_id}", evidence.get_item),
            web.get("/api/v1/items/{item_id}/token.tsr", evidence.token_tsr),
            web.get("/api/v1/items/{item_id}/original", evidence.original),
            web.post("/api/v1/items/{item_id}/delete-original", evidence.delete_original),
            web.post("/api/v1/items/{item_id}/reupload", evidence.reupload),
            web.post("/api/v1/items/{item_id}/reinstate", evidence.reinstate),
            web.post("/api/v1/items/{item_id}/auto-renew", evidence.auto_renew),
            web.get("/api/v1/reminders", evidence.reminders),
            web.get("/api/v1/forecast", evidence.forecast),
            web.get("/api/v1/usage", evidence.usage),
            web.put("/api/v1/webhook", evidence.put_webhook),
            web.get("/api/v1/webhook", evidence.get_webhook),
            web.delete("/api/v1/webhook", evidence.delete_webhook),
            web.get("/api/v1/items/{item_id}/certificate.pdf", evidence_files.certificate),
            web.get("/api/v1/items/{item_id}/kit.zip", evidence_files.kit),
            web.get("/api/v1/items/{item_id}/evidence-record.ers", evidence_files.evidence_record),
            web.get("/api/v1/names/check", names.check),
            web.post("/api/v1/names/applications", names.apply),
            # policy paths before /names/{handle}/...: their first segment "policy" is a
            # valid handle, whose own sub-paths (history, change...) are other words
            web.get("/api/v1/names/policy/words", names_policy.words),
            web.patch("/api/v1/names/policy/words", names_policy.edit_words),
            web.get("/api/v1/names/policy/weights", names_policy.weights),
            web.patch("/api/v1/names/policy/weights", names_policy.edit_weights),
            web.get("/api/v1/names/policy/changes", names_policy.changes),
            web.post("/api/v1/names/policy/reload", names_policy.reload),
            web.get("/api/v1/names/{handle}", names.status),
            web.get("/api/v1/names/{handle}/history", names.history),
            web.post("/api/v1/names/{handle}/change", names.change),
            web.post("/api/v1/names/{handle}/release", names.release),
            web.post("/api/v1/names/{handle}/reclaim", names.reclaim),
            web.post("/api/v1/names/{handle}/objections", names.objections),
            web.post("/api/v1/names/{handle}/complaints", names.complaints),
            web.post("/api/v1/names/{handle}/decision", names.decision),
        ]
    )
    # Each ledger log is a C2SP tlog-tiles prefix plus proofs (web/ledger/logs.py) and lookups
    # (web/ledger/lookup.py).
    log = "/ledger/{log:[a-z0-9][a-z0-9-]{0,35}}/"  # "tokens", "ops" or a log's name
    app.add_routes(
        [
            web.get("/ledger/", ledger_catalog.listing),
            web.get(log + "checkpoint", ledger.checkpoint),
            web.get(log + "checkpoints/", ledger.checkpoint_list),
            web.get(log + "checkpoints/{size}", ledger.archived_checkpoint),
            web.get(log + "vkey", ledger.vkey),
            web.get(log + "chain/{size}", ledger.chain_head),
            web.get(log + "tile/{path:.+}", ledger.tile),
            web.get(log + "proof/inclusion", ledger.inclusion),
            web.get(log + "proof/consistency", ledger.consistency),
            web.get(log + "tlog-proof/{index}", ledger.tlog_proof),
            web.get(log + "lookup/serial/{serial}", ledger_lookup.by_serial),
            web.get(log + "lookup/imprint/{imprint}", ledger_lookup.by_imprint),
            web.get(log + "lookup/leaf/{leaf_hash}", ledger_lookup.by_leaf_hash),
            web.get(log + "lookup/time", ledger_lookup.by_time),
            web.post(log + "publish", ledger.publish),
        ]
    )
