"""Registry: fetching files (mirror -> cache -> download, checksums, dropped connections), load_dataset."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crowdllm.data import REGISTRY, DownloadError, fetch_file, load_dataset
from crowdllm.errors import ConfigError, CrowdDataError, CrowdLLMError

GOOD = b"task,worker,label,text\n" + b"".join(b"t%d,w%d,%d,some text %d\n" % (i, i % 7, i % 5 + 1, i)
                                             for i in range(400))
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[str, bytes]] = {}
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        mode, body = self.routes.get(self.path, ("missing", b""))
        if mode == "missing":
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "ok":
            self.wfile.write(body)
        else:  # "drop": promise the whole body, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 (random port) with a good, a corrupted and a dropping file."""
    handler = type("Handler", (_Handler,), {
        "routes": {
            "/good.csv": ("ok", GOOD),
            "/corrupt.csv": ("ok", GOOD.replace(b"some text 17", b"some text 71")),
            "/drop.csv": ("drop", GOOD),
        },
        "hits": [],
    })
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    class Server:
        url = base
        hits = handler.hits

        @staticmethod
        def stop() -> None:
            httpd.shutdown()
            httpd.server_close()

    yield Server
    if thread.is_alive():
        Server.stop()


@pytest.fixture
def no_mirror(monkeypatch):
    monkeypatch.delenv("CROWDLLM_DATA_PATH", raising=False)


def _cache_files() -> list[Path]:
    root = Path(os.environ["CROWDLLM_CACHE"])
    return [p for p in root.rglob("*") if p.is_file()]


def test_download_is_verified_cached_and_then_served_from_the_cache(server, no_mirror):
    path = fetch_file("good.csv", f"{server.url}/good.csv", GOOD_SHA, "demo")
    assert path == Path(os.environ["CROWDLLM_CACHE"]) / "data" / "demo" / "good.csv"
    assert path.read_bytes() == GOOD
    assert _cache_files() == [path]  # no temporary file left behind
    server.stop()
    again = fetch_file("good.csv", f"{server.url}/good.csv", GOOD_SHA, "demo")
    assert again == path and server.hits == ["/good.csv"]


def test_corrupted_download_is_refused_and_nothing_is_cached(server, no_mirror):
    with pytest.raises(CrowdDataError) as err:
        fetch_file("corrupt.csv", f"{server.url}/corrupt.csv", GOOD_SHA, "demo")
    msg = str(err.value)
    assert f"{server.url}/corrupt.csv" in msg and GOOD_SHA in msg
    assert hashlib.sha256(GOOD.replace(b"some text 17", b"some text 71")).hexdigest() in msg
    assert _cache_files() == []


def test_connection_dropped_halfway_is_a_clean_error_and_nothing_is_cached(server, no_mirror):
    with pytest.raises(DownloadError) as err:
        fetch_file("drop.csv", f"{server.url}/drop.csv", GOOD_SHA, "demo")
    assert isinstance(err.value, CrowdLLMError)
    assert f"{len(GOOD) // 2:,} of {len(GOOD):,} bytes" in str(err.value)
    assert _cache_files() == []


def test_http_error_and_unreachable_server(server, no_mirror):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_file("nope.csv", f"{server.url}/nope.csv", GOOD_SHA, "demo")
    server.stop()
    with pytest.raises(DownloadError, match="could not download"):
        fetch_file("good.csv", f"{server.url}/good.csv", GOOD_SHA, "demo")
    assert _cache_files() == []


def test_a_damaged_cache_entry_is_fetched_again(server, no_mirror):
    cached = Path(os.environ["CROWDLLM_CACHE"]) / "data" / "demo" / "good.csv"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a file")
    assert fetch_file("good.csv", f"{server.url}/good.csv", GOOD_SHA, "demo").read_bytes() == GOOD
    assert server.hits == ["/good.csv"]


def test_local_mirror_comes_first_and_is_verified(tmp_path, monkeypatch, server):
    first, second = tmp_path / "empty", tmp_path / "mirror"
    first.mkdir()
    (second / "demo").mkdir(parents=True)
    (second / "demo" / "good.csv").write_bytes(GOOD)
    (second / "flat.csv").write_bytes(GOOD)
    monkeypatch.setenv("CROWDLLM_DATA_PATH", os.pathsep.join([str(first), str(second)]))
    assert fetch_file("good.csv", f"{server.url}/good.csv", GOOD_SHA, "demo") == second / "demo" / "good.csv"
    assert fetch_file("flat.csv", f"{server.url}/good.csv", GOOD_SHA, "demo") == second / "flat.csv"
    assert server.hits == [] and _cache_files() == []
    (second / "demo" / "good.csv").write_bytes(GOOD + b"extra\n")
    with pytest.raises(CrowdDataError) as err:
        fetch_file("good.csv", f"{server.url}/good.csv", GOOD_SHA, "demo")
    assert str(second / "demo" / "good.csv") in str(err.value) and GOOD_SHA in str(err.value)


def test_unknown_checksum_warns(tmp_path, monkeypatch):
    (tmp_path / "x.csv").write_bytes(GOOD)
    monkeypatch.setenv("CROWDLLM_DATA_PATH", str(tmp_path))
    with pytest.warns(UserWarning, match="no sha256 checksum is known"):
        assert fetch_file("x.csv", "https://example.invalid/x.csv", None, "demo") == tmp_path / "x.csv"


# ------------------------------------------------------------------------------------------ load_dataset
def test_unknown_name_lists_the_registered_sets_and_suggests_one():
    with pytest.raises(ConfigError) as err:
        load_dataset("popquorn-offensivenes")
    msg = str(err.value)
    assert "did you mean 'popquorn-offensiveness'?" in msg
    assert all(name in msg for name in REGISTRY)


def test_missing_file_path_says_no_such_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_dataset(str(tmp_path / "mine.csv"))


def test_a_users_file_loads_through_load_dataset(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_bytes(GOOD)
    ds = load_dataset(str(path))
    assert (ds.n_responses, ds.n_tasks, ds.n_workers) == (400, 400, 7)
    assert ds.label.kind == "ordinal" and ds.label.scale == (1, 5)


def test_a_tested_set_refuses_a_column_map():
    with pytest.raises(ConfigError, match="fixed layout"):
        load_dataset("popquorn-offensiveness", column_map="task=x")


def test_registry_entries_are_complete():
    tested = {n for n, s in REGISTRY.items() if s.tested}
    assert tested == {"popquorn-offensiveness", "popquorn-email-rewriting", "zurich-pb-top5"}
    for spec in REGISTRY.values():
        assert spec.citation and spec.licence and spec.files
        for f in spec.files:
            assert f.url.startswith("https://")
            assert (f.sha256 is not None) == spec.tested
        if spec.tested:
            assert all(f.url.startswith("https://raw.githubusercontent.com/") for f in spec.files)


def test_untested_popquorn_entry_warns_and_loads_a_file_with_the_expected_layout(tmp_path, monkeypatch):
    (tmp_path / "popquorn").mkdir()
    (tmp_path / "popquorn" / "politeness_rating.csv").write_text(
        "instance_id,user_id,text,politeness,gender,race,age,occupation,education\n"
        "1,10,Could you please help?,4,Man,White,18-24,Student,College degree\n"
        "1,11,Could you please help?,5,Woman,Asian,>65,Retired,Graduate degree\n"
        "2,10,Do it now.,1,Man,White,18-24,Student,College degree\n"
        "2,,Do it now.,2,,,,,\n"
    )
    monkeypatch.setenv("CROWDLLM_DATA_PATH", str(tmp_path))
    with pytest.warns(UserWarning) as record:
        ds = load_dataset("popquorn-politeness")
    messages = " ".join(str(w.message) for w in record)
    assert "NOT verified" in messages and "no sha256 checksum" in messages
    assert (ds.n_responses, ds.n_tasks, ds.n_workers, ds.dropped_rows) == (3, 2, 2, 1)
    assert ds.label.scale == (1, 5) and ds.ordered_attributes["age"][0] == "18-24"


def test_untested_entry_without_its_file_says_it_needs_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CROWDLLM_DATA_PATH", str(tmp_path))
    monkeypatch.setattr("urllib.request.urlopen", _refuse)
    with pytest.warns(UserWarning, match="needs question_answering.csv"), \
            pytest.raises(DownloadError, match="download it by hand"):
        load_dataset("popquorn-qa-difficulty")


def _refuse(*args, **kwargs):
    import urllib.error

    raise urllib.error.URLError("no network in tests")


def _gz_jsonl(path: Path, records: list[dict]) -> None:
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))


def test_amazon_builder_keeps_products_with_the_requested_number_of_reviewers(tmp_path, monkeypatch):
    folder = tmp_path / "amazon-2023"
    folder.mkdir()
    reviews = (
        [{"parent_asin": "A", "user_id": f"u{i}", "rating": 5.0 - i % 3, "text": "ok"} for i in range(3)]
        + [{"parent_asin": "A", "user_id": "u0", "rating": 1.0, "text": "again"}]  # a repeated review
        + [{"parent_asin": "B", "user_id": f"u{i}", "rating": 4.0} for i in range(2)]  # too few reviewers
        + [{"parent_asin": "C", "user_id": f"v{i}", "rating": 3.0} for i in range(3)]  # no metadata
    )
    _gz_jsonl(folder / "All_Beauty.jsonl.gz", reviews)
    _gz_jsonl(folder / "meta_All_Beauty.jsonl.gz", [
        {"parent_asin": "A", "title": "Lip balm", "features": ["SPF 15"], "description": ["Smooth."]},
        {"parent_asin": "B", "title": "Comb"},
    ])
    monkeypatch.setenv("CROWDLLM_DATA_PATH", str(tmp_path))
    with pytest.warns(UserWarning) as record:
        ds = load_dataset("amazon-beauty", min_reviewers=3, max_reviewers=30)
    assert "NOT verified" in str(record[0].message)
    assert sum("no sha256 checksum" in str(w.message) for w in record) == 2
    assert ds.tasks["task"].tolist() == ["A"]
    assert ds.tasks["text"].iloc[0] == "Lip balm Features: SPF 15 Description: Smooth."
    assert sorted(ds.responses["label"]) == [3.0, 4.0, 5.0]  # the first review of u0 is kept
    assert "1 repeated reviews" in ds.description and "1 products without metadata" in ds.description
