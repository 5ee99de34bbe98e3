"""Shared pytest fixtures: SoftHSM tokens, a real NTP responder, a running TSA."""
