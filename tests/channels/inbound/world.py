"""The team the channel tests route to: two managers by round robin and a head at the end of the chain, with each
channel's own first-contact deadline."""

from __future__ import annotations


def chat_team(deadlines: str) -> str:
    """The rules file, with `sla.channels` as given ("telegram: 5m")."""
    return f"""
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {{key: sales, name: Sales, timezone: Europe/Kyiv, head: halyna, hours: always}}
managers:
  - {{key: anna, name: Anna, team: sales, capacity: 20}}
  - {{key: bohdan, name: Bohdan, team: sales, capacity: 20}}
  - {{key: halyna, name: Halyna, team: sales, capacity: 20}}
routing:
  rules:
    - {{key: all, team: sales, managers: [anna, bohdan], strategy: round_robin}}
sla:
  default: {{first_contact: 30m, count: wall_clock, chain: {{max_hops: 2, final: team_head}}}}
  channels: {{{deadlines}}}
"""
