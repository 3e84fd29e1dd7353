"""``Reinjector.from_config``: the one way to build a reinjection pool from a configuration
key, with the timeouts and the per-connection limit the configuration sets."""

from __future__ import annotations

import pytest

from ie_core import ConfigError
from ie_core.smtp.reinject import Reinjector

MSG = b"From: a@example.com\r\nSubject: t\r\n\r\nbody\r\n"


def test_it_takes_the_address_and_the_reinject_settings(make_app):
    app = make_app(**{"filter.incoming_reinject": "[::1]:2526",
                      "filter.reinject_timeout": 7.5, "filter.reinject_idle": 3.0,
                      "filter.reinject_max_per_connection": 4, "ie.hostname": "mx.example"})
    r = Reinjector.from_config(app, "filter.incoming_reinject")
    assert (r.host, r.port, r.timeout, r.idle, r.max_per_connection, r.helo) == (
        "::1", 2526, 7.5, 3.0, 4, "mx.example")
    default = Reinjector.from_config(app)
    assert (default.host, default.port) == ("127.0.0.1", 10026)


def test_a_bad_address_is_a_config_error_naming_the_key(make_app):
    app = make_app(**{"filter.reinject": "localhost"})
    with pytest.raises(ConfigError, match="filter.reinject must be HOST:PORT"):
        Reinjector.from_config(app)


def test_a_connection_carries_at_most_max_per_connection_messages(make_app, sink):
    app = make_app(**{"filter.reinject": f"127.0.0.1:{sink.port}",
                      "filter.reinject_max_per_connection": 2})
    r = Reinjector.from_config(app)
    try:
        for i in range(5):
            assert r.send("a@example.com", [f"r{i}@example.org"], MSG).ok
    finally:
        r.close()
    peers = [m.peer for m in sink.wait_for(5)]
    assert len(peers) == 5
    assert [peers.count(p) for p in dict.fromkeys(peers)] == [2, 2, 1]
