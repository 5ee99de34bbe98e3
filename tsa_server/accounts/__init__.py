"""Accounts: organisations, members and API keys, and who may do what with a key.

- `keys`: the key format, the account values (Organisation, Member, ApiKey) and their
  pure helpers; `key_rules`: roles, scopes, principals and delegation;
- `service.Accounts`: the account operations and authentication;
- `store`: the `AccountStore` protocol and its SQLite implementation, over the file
  `sqlite.SqliteFile` opens (shared with the evidence stores); `schema`: its tables and
  rules; `times`: the stores' instants;
- `key_use.KeyUseRecorder`: keys' last uses, written off the event loop;
- `errors`: the layer's errors, rooted at `AccountError`.

Evidence, names and web use this package; it imports none of them.
"""
