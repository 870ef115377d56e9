"""pytest fixture for a local unbound test server (see dns_server.py).

Import it where a test or conftest.py needs it:

    from dns_fixture import unbound_server  # noqa: F401

    def test_x(unbound_server):
        srv = unbound_server(["example.test MX 10 mx.example.test",
                              "mx.example.test A 127.0.0.2"])
        ... srv.address  ("127.0.0.1@PORT"), srv.port, srv.query(name, type)

Every server started is stopped (by PID) at teardown.
"""

import pytest

from dns_server import UnboundServer


@pytest.fixture
def unbound_server(tmp_path):
    started = []

    def start(zone_records, zones=None):
        srv = UnboundServer(zone_records, tmp_path / f"unbound{len(started)}",
                            zones=zones)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.stop()
