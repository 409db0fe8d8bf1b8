"""The supervisor's network readiness checks against a real child that starts listening late."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from infra.processes import Child, Supervisor, free_port, http_ok, listening, port_open


async def test_a_child_is_ready_once_it_listens_and_its_health_url_answers(tmp_path: Path):
    port = free_port()
    late = (
        "import time, http.server; time.sleep(1); "
        f"http.server.test(http.server.SimpleHTTPRequestHandler, port={port}, bind='127.0.0.1')"
    )
    (tmp_path / "index.html").write_text("here")
    server = Child("late server", [sys.executable, "-c", late], log=tmp_path / "late.log", cwd=tmp_path)
    with Supervisor() as supervisor:
        supervisor.start(server)
        began = time.monotonic()
        assert not await http_ok(f"http://127.0.0.1:{port}/")(server), "not yet: it sleeps before it listens"
        server.ready = listening("127.0.0.1", port)
        await supervisor.until_ready(server, 20)
        assert time.monotonic() - began >= 1 and port_open("127.0.0.1", port)
        assert await http_ok(f"http://127.0.0.1:{port}/")(server)
        assert not await http_ok(f"http://127.0.0.1:{port}/missing")(server), "a 404 is not healthy"
    assert not port_open("127.0.0.1", port), "stopped, it listens no more"
