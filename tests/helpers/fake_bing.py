"""A stand-in for Bing image search on 127.0.0.1: result pages in Bing's async markup, and the images.

    /images/async?q=<keyword>&first=<n>   results n.. of the keyword (35 a page, as Bing answers)
    /img/<name>                           an image, or one of the faults a real crawl meets: an error,
                                          a slow answer, a body that never ends, a length that lies,
                                          a byte a second, a redirect

Hostile answers are bounded all the same (HOSTILE_MAX_BYTES, the bytes' count; a trickle, the
body's length): the server stops by itself once the client has gone or the bound is reached.

Each result is `<div class="imgpt"><a class="iusc" m="{html-escaped compact JSON}">`, the JSON
holding the image URL (murl) and the page that shows it (purl), as Bing writes them.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PAGE_SIZE = 35
HOSTILE_MAX_BYTES = 2 * 2**30  # what an endless or lying body sends at most, if the client never hangs up


@dataclass
class Served:
    body: bytes = b""
    content_type: str = "image/jpeg"
    status: int = 200
    delay_s: float = 0.0  # wait before answering (a slow server)
    fail_first: int = 0  # answer 500 to this many requests before the real answer
    endless: bool = False  # a body without Content-Length that goes on until the client hangs up
    length: int | None = None  # announce this Content-Length, and send zeros up to it
    trickle_s: float = 0.0  # send the body one byte every trickle_s seconds
    location: str = ""  # answer 302, redirecting here


class FakeBing:
    def __init__(self):
        self.results: dict[str, list[str]] = {}  # keyword -> image names, in result order
        self.files: dict[str, Served] = {}  # image name -> what /img/<name> answers
        self.hits: Counter = Counter()  # path -> requests received
        self.queries: list[dict] = []  # the query string of every result-page request
        self.proxied: list[str] = []  # requests that came as to a proxy (an absolute URL), for the host named
        self.arrivals: list[tuple[str, float]] = []  # (path, time.monotonic()) of every request, as it came
        self.sent: Counter = Counter()  # path -> body bytes written
        self.page_status = 200
        self.failing_pages: set[int] = set()  # result pages (their `first`) answered with HTTP 500
        self.page_delay_s = 0.0  # result pages answered after this wait (a slow search)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def endpoint(self) -> str:
        return f"{self.base}/images/async"

    def add(self, keyword: str, name: str, served: Served | None = None) -> None:
        """List /img/<name> among the keyword's results; `name` may end in a query string, which the
        server ignores. Without `served`, an image already added is listed again (another keyword)."""
        self.results.setdefault(keyword, []).append(name)
        if served is not None:
            self.files[name.split("?")[0]] = served

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def page(self, keyword: str, first: int) -> bytes:
        items = []
        for name in self.results.get(keyword, [])[first : first + PAGE_SIZE]:
            url = name if name.startswith("http") else f"{self.base}/img/{name}"  # absolute: a result elsewhere
            meta = {"cid": name, "purl": f"https://example.org/birds/{name}.html", "murl": url}
            m = html.escape(json.dumps(meta, separators=(",", ":"), ensure_ascii=False), quote=True)
            items.append(f'<li><div class="iuscp"><div class="imgpt"><a class="iusc" m="{m}" href="#">'
                         f'<img class="mimg" alt="{html.escape(keyword)}"></a></div></div></li>')
        return f'<html><body><ul class="dgControl_list">{"".join(items)}</ul></body></html>'.encode()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                if url.netloc:  # asked as a proxy: it answers for any host
                    fake.proxied.append(self.path)
                fake.hits[url.path] += 1
                fake.arrivals.append((url.path, time.monotonic()))
                if url.path == "/images/async":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    fake.queries.append(query)
                    body = fake.page(query.get("q", ""), int(query.get("first", 0)))
                    status = 500 if int(query.get("first", 0)) in fake.failing_pages else fake.page_status
                    time.sleep(fake.page_delay_s)
                    return self.answer(status, "text/html; charset=utf-8", body)
                served = fake.files.get(url.path.removeprefix("/img/"))
                if served is None:
                    return self.answer(404, "text/plain", b"not found")
                time.sleep(served.delay_s)
                if fake.hits[url.path] <= served.fail_first:
                    return self.answer(500, "text/plain", b"try again")
                if served.location:
                    self.send_response(302)
                    self.send_header("Location", served.location)
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                if served.endless or served.length is not None or served.trickle_s:
                    return self.hostile(url.path, served)
                self.answer(served.status, served.content_type, served.body)

            def hostile(self, path: str, served: Served):
                body_length = served.length if served.length is not None else len(served.body)
                try:
                    self.send_response(served.status)
                    self.send_header("Content-Type", served.content_type)
                    if not served.endless:
                        self.send_header("Content-Length", str(body_length))
                    self.end_headers()
                    if served.trickle_s:
                        for byte in served.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            fake.sent[path] += 1
                            time.sleep(served.trickle_s)
                        return
                    chunk = b"\0" * 2**16
                    while fake.sent[path] < min(body_length if not served.endless else HOSTILE_MAX_BYTES, HOSTILE_MAX_BYTES):
                        self.wfile.write(chunk)
                        fake.sent[path] += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up: what it is meant to do

            def answer(self, status: int, content_type: str, body: bytes):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def log_message(self, *args):
                pass

        return Handler
