"""A page on another port of 127.0.0.1 submits forms to the console's server in a browser
that is logged in to it. Chromium sends the session cookie along (SameSite counts every
port of a host as one site) and says where the form came from; the server refuses."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from naiad.testing.live import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture
def attacker(live: LiveServer) -> Iterator[str]:
    """Another local web server whose /PATH page auto-submits a form to the console's PATH."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = (
                f'<form id="f" method="post" action="{live.url}{self.path}"></form>'
                '<script>document.getElementById("f").submit()</script>'
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_forms_from_another_local_port_are_refused(
    console, live: LiveServer, attacker: str
) -> None:  # type: ignore[no-untyped-def]
    tab = console.new_page()
    try:
        tab.goto(f"/?token={live.token}")
        assert any(c["name"] == "naiad_token" for c in console.cookies())
        for target in ("/api/v1/jobs/no-such-job/stop", "/logout"):
            with tab.expect_response(lambda r, t=target: r.url == live.url + t) as answer:
                tab.goto(attacker + target)
            response = answer.value
            assert response.status == 403, response.text()
            assert attacker in response.json()["message"]
        assert any(c["name"] == "naiad_token" for c in console.cookies())  # still logged in
        assert tab.request.get(f"{live.url}/api/v1/experiments").status == 200
    finally:
        tab.close()
