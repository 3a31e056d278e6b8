"""The model zoo: pinned entries, and the real urllib download against an HTTP server on loopback."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import threading
from dataclasses import replace

import pytest

from kdedge.cli import main
from kdedge.errors import KdedgeError
from kdedge.models import zoo

PAYLOAD = b"kdedge zoo test payload\n" * 1000  # 24 kB: several read blocks


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture()
def server(tmp_path):
    """An http.server on 127.0.0.1 serving tmp_path/srv; yields (base_url, folder, request log)."""
    folder = tmp_path / "srv"
    folder.mkdir()
    (folder / "model.pth").write_bytes(PAYLOAD)
    requests = []

    class Handler(_QuietHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % httpd.server_address[1], folder, requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """An empty KDEDGE_HOME, no KDEDGE_ZOO_DIR, downloads allowed."""
    h = tmp_path / "home"
    monkeypatch.setenv("KDEDGE_HOME", str(h))
    monkeypatch.delenv("KDEDGE_ZOO_DIR", raising=False)
    monkeypatch.delenv("KDEDGE_OFFLINE", raising=False)
    return h


def _entry(url, sha=None, name="test_model_x2"):
    return replace(zoo.ZOO["imdn_x2"], name=name, path="checkpoints/model.pth",
                   sha256=sha or hashlib.sha256(PAYLOAD).hexdigest(), url_override=url)


def test_download_writes_verified_file(server, tmp_path):
    base, _, _ = server
    dest = tmp_path / "out" / "model.pth"
    path = zoo.download(base + "/model.pth", dest, hashlib.sha256(PAYLOAD).hexdigest(), progress=True)
    assert path == dest and dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.pth"]  # no temp file left


def test_checksum_mismatch_removes_the_file_and_names_both_hashes(server, tmp_path):
    base, _, _ = server
    dest = tmp_path / "out" / "model.pth"
    expected = "0" * 64
    with pytest.raises(KdedgeError) as info:
        zoo.download(base + "/model.pth", dest, expected, progress=False)
    message = str(info.value)
    assert expected in message and hashlib.sha256(PAYLOAD).hexdigest() in message
    assert list(dest.parent.iterdir()) == []


def test_http_404_is_a_clear_error(server, tmp_path):
    base, _, _ = server
    dest = tmp_path / "out" / "absent.pth"
    with pytest.raises(KdedgeError, match="HTTP 404"):
        zoo.download(base + "/absent.pth", dest, "0" * 64, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_weights_path_downloads_once_then_uses_the_cache_offline(server, home, monkeypatch):
    base, folder, requests = server
    entry = _entry(base + "/model.pth")
    monkeypatch.setitem(zoo.ZOO, entry.name, entry)
    first = zoo.weights_path(entry.name, progress=False)
    assert first == home / "weights" / "model.pth" and first.read_bytes() == PAYLOAD
    assert requests == ["/model.pth"]
    # server content gone and downloads forbidden: the verified cache still answers, no request made
    (folder / "model.pth").unlink()
    monkeypatch.setenv("KDEDGE_OFFLINE", "1")
    assert zoo.weights_path(entry.name, progress=False) == first
    assert requests == ["/model.pth"]


def test_cache_copy_that_changed_is_refused(server, home, monkeypatch):
    base, _, _ = server
    entry = _entry(base + "/model.pth")
    monkeypatch.setitem(zoo.ZOO, entry.name, entry)
    path = zoo.weights_path(entry.name, progress=False)
    path.write_bytes(PAYLOAD + b"tampered")
    with pytest.raises(KdedgeError, match="checksum mismatch for .*model.pth"):
        zoo.weights_path(entry.name, progress=False)


def test_zoo_dir_copy_is_used_without_network(home, tmp_path, monkeypatch):
    local = tmp_path / "local"
    local.mkdir()
    (local / "model.pth").write_bytes(PAYLOAD)
    # an URL nothing listens on: any download attempt would fail
    entry = _entry("http://127.0.0.1:9/model.pth")
    monkeypatch.setitem(zoo.ZOO, entry.name, entry)
    monkeypatch.setenv("KDEDGE_ZOO_DIR", str(local))
    assert zoo.weights_path(entry.name) == local / "model.pth"
    monkeypatch.delenv("KDEDGE_ZOO_DIR")
    monkeypatch.setenv("KDEDGE_OFFLINE", "1")
    with pytest.raises(KdedgeError, match="not available offline"):
        zoo.weights_path(entry.name)


def test_unreachable_server_is_a_clear_error(home, monkeypatch):
    entry = _entry("http://127.0.0.1:9/model.pth")  # discard port: connection refused
    monkeypatch.setitem(zoo.ZOO, entry.name, entry)
    with pytest.raises(KdedgeError, match="download of http://127.0.0.1:9/model.pth failed"):
        zoo.weights_path(entry.name, progress=False)
    assert not any((home / "weights").iterdir())


def test_entries_are_pinned():
    for e in zoo.ENTRIES:
        assert re.fullmatch(r"[0-9a-f]{40}", e.commit), e.name
        assert re.fullmatch(r"[0-9a-f]{64}", e.sha256), e.name
        assert e.url == "https://raw.githubusercontent.com/%s/%s/%s" % (e.repo, e.commit, e.path)
        assert e.licence and e.scale in (2, 3, 4)


@pytest.mark.shared
def test_entries_match_the_shared_checksums_and_origins(shared_weights):
    sums = dict(line.split()[::-1] for line in (shared_weights / "SHA256SUMS").read_text().splitlines() if line.strip())
    readme = (shared_weights / "README.md").read_text()
    for e in zoo.ENTRIES:
        assert sums[e.filename] == e.sha256, e.name
        assert e.repo in readme and e.commit[:8] in readme, e.name


@pytest.mark.shared
def test_cli_verify_and_list(shared_weights, home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDEDGE_ZOO_DIR", str(shared_weights))
    assert main(["zoo", "verify"]) == 0
    assert capsys.readouterr().out.count(" ok ") == len(zoo.ENTRIES)
    assert main(["zoo", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["status"] for r in rows} == {e.name: "ok" for e in zoo.ENTRIES}
    # a corrupted copy earlier on KDEDGE_ZOO_DIR: verify fails with exit status 1
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "IMDN_x2.pth").write_bytes(b"corrupt")
    monkeypatch.setenv("KDEDGE_ZOO_DIR", str(bad))
    assert main(["zoo", "verify", "imdn_x2"]) == 1
    assert "mismatch" in capsys.readouterr().out


def test_cli_download_errors(home, monkeypatch, capsys):
    assert main(["zoo", "download"]) == 1
    assert main(["zoo", "download", "no_such_model"]) == 1
    monkeypatch.setenv("KDEDGE_OFFLINE", "1")
    assert main(["zoo", "download", "imdn_x2"]) == 1
    assert "not available offline" in capsys.readouterr().err
