"""`lmech serve`: read-only, confined to the report folder, loopback unless --allow-remote."""

import http.client
import os
import threading

import pytest
from typer.testing import CliRunner

from lmech.cli.commands import app
from lmech.errors import InputError
from lmech.report.serve import check_host, is_loopback, make_server


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "rep"
    (root / "atlas-1").mkdir(parents=True)
    (root / "index.html").write_text("<p>newest</p>")
    (root / "atlas-1" / "index.html").write_text("<p>one</p>")
    (root / "empty").mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    server = make_server(root, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _get(port: int, path: str, method: str = "GET"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def test_serves_the_pages(served):
    response, body = _get(served, "/")
    assert response.status == 200 and body == b"<p>newest</p>"
    assert "default-src 'none'" in response.getheader("Content-Security-Policy")
    assert _get(served, "/atlas-1/index.html")[1] == b"<p>one</p>"
    assert _get(served, "/atlas-1/")[1] == b"<p>one</p>"


def test_nothing_outside_the_folder_and_no_listing(served):
    assert _get(served, "/empty/")[0].status == 404  # a folder without index.html is not listed
    assert _get(served, "/../secret.txt")[0].status == 404
    assert _get(served, "/%2e%2e/secret.txt")[0].status == 404
    assert _get(served, "/link.txt")[0].status == 404  # a symlink leading out of the folder
    assert _get(served, "/nothing.html")[0].status == 404


def test_read_only(served):
    for method in ("POST", "PUT", "DELETE"):
        assert _get(served, "/index.html", method)[0].status == 501


def test_loopback_only_unless_allowed():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    with pytest.raises(InputError, match="--allow-remote"):
        check_host("0.0.0.0", allow_remote=False)
    check_host("0.0.0.0", allow_remote=True)


def test_cli_refuses_a_remote_host_in_one_line(tmp_path):
    (tmp_path / "rep").mkdir()
    result = CliRunner().invoke(app, ["serve", "--out", str(tmp_path / "rep"), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "--allow-remote" in result.stderr
    missing = CliRunner().invoke(app, ["serve", "--out", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no report folder" in missing.stderr
