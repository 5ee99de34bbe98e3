"""What the NTP monitor polls and what it accepts (`[clock]` in conf/tsa.toml): one
frozen dataclass, validated on construction. The rules that use it are `judge.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tsa_server.clock.ntp_query import parse_server


@dataclass(frozen=True)
class NtpSettings:
    """How the monitor polls and what it accepts. Validated on construction."""

    servers: tuple[str, ...] = ("127.0.0.1:123",)  # "host", "host:port" or "[v6]:port"
    interval_s: float = 16.0  # wait between polls
    timeout_s: float = 1.0  # per server and poll
    max_offset_ms: float = 100.0  # |offset| above this stops issuance
    max_age_s: float = 64.0  # the last good sample expires after this
    max_error_ms: float = 1000.0  # largest error bound we issue under = accuracy we state
    drift_ppm: float = 15.0  # growth of the error bound with the sample's age
    min_good_servers: int = 1  # agreeing good samples one poll needs to count as in sync
    # Trust a server whose reference is its own local clock (development only; refused
    # with [server] environment = "production").
    accept_local_reference: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "servers", tuple(self.servers))
        if not self.servers:
            raise ValueError("at least one NTP server is needed")
        for server in self.servers:
            parse_server(server)
        if len(set(self.servers)) != len(self.servers):
            # A server listed twice would vote twice in the agreement among sources.
            raise ValueError("servers must not list a server twice")
        for name in ("interval_s", "timeout_s", "max_offset_ms", "max_error_ms"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if not self.drift_ppm >= 0:
            raise ValueError("drift_ppm must not be negative")
        if not 1 <= self.min_good_servers <= len(self.servers):
            raise ValueError("min_good_servers must be between 1 and the number of servers")
        # A sample must outlive the wait for the next one, or the clock flaps between polls.
        longest_wait = self.interval_s + self.timeout_s * len(self.servers)
        if not self.max_age_s > longest_wait:
            raise ValueError(
                f"max_age_s must exceed interval_s + timeout_s x servers ({longest_wait:g} s)"
            )
