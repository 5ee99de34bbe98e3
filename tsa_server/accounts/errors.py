"""Errors of the accounts layer (organisations, members, API keys, who may do what).
Every message is client-safe: no secrets, no paths.

web/errors.py maps them to HTTP in its table; the CLI turns any TSAError into one line.
"""

from __future__ import annotations

from tsa_server.errors import TSAError


class AccountError(TSAError):
    """Root of the accounts layer's errors."""


class InvalidAccountInput(AccountError, ValueError):
    """A name, role, scope or expiry a caller supplied is malformed or out of bounds
    (HTTP 400)."""


class AccountNotFound(AccountError, LookupError):
    """No such organisation, member or key here (HTTP 404). Another organisation's keys
    and members are reported exactly like missing ones."""


class OrganisationNotFound(AccountNotFound):
    pass


class MemberNotFound(AccountNotFound):
    pass


class ApiKeyNotFound(AccountNotFound):
    pass


class AccountConflict(AccountError):
    """The request contradicts stored state, e.g. the active-key limit (HTTP 409)."""


class AuthenticationError(AccountError):
    """The request carries no usable API key (HTTP 401)."""


class InvalidApiKey(AuthenticationError):
    """Missing, malformed, unknown or wrong secret: one message for all of them."""

    def __init__(self, message: str = "invalid API key") -> None:
        super().__init__(message)


class ApiKeyRevoked(AuthenticationError):
    def __init__(self, message: str = "this API key has been revoked") -> None:
        super().__init__(message)


class ApiKeyExpired(AuthenticationError):
    def __init__(self, message: str = "this API key has expired") -> None:
        super().__init__(message)


class PermissionDenied(AccountError):
    """A valid key that may not do this (HTTP 403). `scope` names a missing scope."""

    def __init__(self, message: str, scope: str | None = None) -> None:
        super().__init__(message)
        self.scope = scope
