"""Verifies a mail server port by port: delivery round trips, TLS, AUTH and relay behaviour.

Never imports ``stack``: it reads a target description (build/target.json for the lab),
so it can check any server reachable on 127.0.0.1.
"""
