"""The bing crawl source: Bing image search through icrawler, as the article crawled; the images
downloaded here, on plain requests, under limits no server can break.

The search is icrawler's: its BingFeeder writes the result-page URLs with Bing's filters (here at
crawl.bing.endpoint, a param, so tests and users behind a proxy can point it elsewhere), and a
BingParser reads each result's `m` attribute as JSON (icrawler's own parser keeps only URLs
ending in .jpg and drops the page an image comes from, which the manifest records).

A result URL can be any URL on the web, so each download is bounded:
- bytes: the Content-Length is checked first, then the bytes are counted as they stream to disk
  (crawl.max_image_mb), so memory per image stays a chunk whatever the server sends (too_large);
- time: a wall-clock deadline for the whole download, against servers that send a byte a second
  (crawl.bing.download_timeout_s: download_timed_out), besides crawl.bing.timeout_s per request;
- place: every image URL and every redirect is resolved here and refused when it points at a
  loopback, private, link-local, multicast or reserved address (a cloud machine's metadata
  service, a router), unless that address is the search endpoint's own (a test server, a mirror
  on the LAN) or crawl.bing.allow_private_addresses is set. The connection goes to the address
  that was checked, never to a second answer of the name (refused_address).

One pool of crawl.bing.threads downloads serves every class, so the searches of the next classes
go on while a download stalls, and a crawl takes as long as its slowest downloads, not the sum of
each class's. The crawl keeps what a one-at-a-time crawl would keep: the results in Bing's order up
to the one that makes crawl.bing.max_num downloaded images; a class's downloads in flight are never
more than it still needs. Requests are retried a bounded number of times after connection errors,
timeouts and 429/5xx answers.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import json
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode, urlsplit

import requests
from bs4 import BeautifulSoup
from icrawler.builtin.bing import BingFeeder, BingParser
from icrawler.utils import Signal
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from stages.sources.cleaning import CrawlError, Found
from stages.shared.params import BirdClass, BingFilters, BingSource, Params

PAGE_STEP = 20  # icrawler's Bing feeder asks for every 20th result (Bing answers up to 35 a page)
BACKOFF_S = 0.5  # sleeps 0, 2x, 4x ... this between retries
RETRY_STATUSES = (429, 500, 502, 503, 504)
CHUNK = 64 * 1024  # bytes read at a time from an image's answer

OFFLINE_HINT = (
    "Without network, crawl offline: crawl.source: synthetic (built in) or crawl.source: folder with "
    "crawl.folder.path (your own images), e.g. `dvc exp run -S crawl.source=synthetic`. Behind a proxy, "
    "set HTTPS_PROXY, or point crawl.bing.endpoint at a host you can reach."
)


class BingUnreachable(CrawlError):
    """No result page could be read."""


def find_images(params: Params) -> Iterator[Found]:
    """The crawl's bing source: one search per class of params, with crawl.bing's settings."""
    return search(list(params.classes), params.crawl.bing, params.crawl.max_image_mb)


# --- the search: icrawler's feeder and parser -------------------------------------------------


def search(classes: list[BirdClass], cfg: BingSource, max_image_mb: float = 50.0) -> Iterator[Found]:
    """Search Bing once per class with its keyword; yield every result, downloaded or not, class by
    class in Bing's order, while the downloads of all classes share one pool."""
    print(f"crawl: searching {cfg.endpoint} for {len(classes)} classes, up to {cfg.max_num} images each")
    pages = search_session(cfg)
    images = image_session(cfg)
    limits = DownloadLimits(int(max_image_mb * 2**20), cfg.download_timeout_s, cfg.timeout_s, cfg.retries + 1)
    with tempfile.TemporaryDirectory(prefix="bing-") as staging, \
            concurrent.futures.ThreadPoolExecutor(cfg.threads, thread_name_prefix="download") as pool:
        downloads = Downloads(pool, images, limits, Path(staging), cfg.max_num)
        for bird in classes:
            downloads.add(ClassResults(bird, *read_results(bird, cfg, pages)))
            yield from downloads.finished_classes(wait=False)
        yield from downloads.finished_classes(wait=True)


def read_results(bird: BirdClass, cfg: BingSource, session: RetryingSession) -> tuple[list[dict], list[str]]:
    """(every result of the class's result pages in Bing's order, what went wrong with the pages lost)."""
    feeder = EndpointFeeder(1, Signal(), session)
    parser = JsonParser(1, Signal(), session)
    urls = feeder.page_urls(cfg.endpoint, bird.keyword, cfg.max_num, filter_options(cfg.filters))
    results, seen, lost, read = [], set(), [], 0
    for i, url in enumerate(urls):
        try:
            response = session.get(url, timeout=cfg.timeout_s)
        except requests.RequestException:
            response = None
        if response is None or response.status_code != 200:
            lost.append(f"{session.failures[url]} at first={i * PAGE_STEP}")
            continue
        read += 1
        for result in parser.parse(response):
            if result["file_url"] not in seen:  # Bing's pages overlap
                seen.add(result["file_url"])
                results.append(result)
    if read == 0:
        raise BingUnreachable(
            f"could not read Bing's results for class {bird.slug} ({bird.keyword}) at {urls[0]}: "
            f"{session.failures.get(urls[0], 'no answer')}. {OFFLINE_HINT}"
        )
    return results, lost


def filter_options(filters: BingFilters) -> dict:
    """params' filters in icrawler's terms ({"type": "photo", ...}), leaving out those set to any."""
    return {k: v for k, v in vars(filters).items() if v != "any"}


class EndpointFeeder(BingFeeder):
    """BingFeeder's result-page URLs with its filters, at a given endpoint, the keyword URL-encoded."""

    def page_urls(self, endpoint: str, keyword: str, max_num: int, filters: dict) -> list[str]:
        qft = self.get_filter().apply(filters)
        return [
            f"{endpoint}?{urlencode({'q': keyword, 'first': first})}" + (f"&qft={qft}" if qft else "")
            for first in range(0, max_num, PAGE_STEP)
        ]


class JsonParser(BingParser):
    """Every result of a page: `m` is JSON with the image URL (murl) and its page (purl)."""

    def parse(self, response, **kwargs):
        soup = BeautifulSoup(response.content.decode("utf-8", "ignore"), "lxml")
        for link in soup.select("div.imgpt a.iusc[m]"):
            try:
                meta = json.loads(link["m"])  # BeautifulSoup has already unescaped the attribute
            except json.JSONDecodeError:
                continue
            if not isinstance(meta, dict):
                continue
            image_url, page_url = meta.get("murl"), meta.get("purl")
            if isinstance(image_url, str) and image_url.startswith(("http://", "https://")):
                yield dict(file_url=image_url, page_url=page_url if isinstance(page_url, str) else "")


# --- the downloads: one pool for every class ---------------------------------------------------


@dataclass
class ClassResults:
    """One class's results and what became of them, result index -> Found."""

    bird: BirdClass
    results: list[dict]
    lost_pages: list[str]
    done: dict[int, Found] = field(default_factory=dict)
    next: int = 0  # the first result not handed to the pool yet
    in_flight: int = 0

    def downloaded(self) -> int:
        return sum(f.file is not None for f in self.done.values())

    def wanted(self, max_num: int) -> int:
        """How many more results to hand out now: never more downloads than the class still needs."""
        return max(0, min(max_num - self.downloaded() - self.in_flight, len(self.results) - self.next))

    def finished(self, max_num: int) -> bool:
        return self.in_flight == 0 and self.wanted(max_num) == 0


class Downloads:
    """The results of every class through one pool; classes come out whole, in the order added."""

    def __init__(self, pool, session: requests.Session, limits: DownloadLimits, staging: Path, max_num: int):
        self.pool, self.session, self.limits, self.staging, self.max_num = pool, session, limits, staging, max_num
        self.classes: list[ClassResults] = []
        self.running: dict[concurrent.futures.Future, tuple[ClassResults, int]] = {}

    def add(self, c: ClassResults) -> None:
        self.classes.append(c)
        self.hand_out(c)

    def hand_out(self, c: ClassResults) -> None:
        for _ in range(c.wanted(self.max_num)):
            i = c.next
            future = self.pool.submit(download, self.session, c.results[i]["file_url"], self.staged(c, i), self.limits)
            self.running[future] = c, i
            c.next, c.in_flight = i + 1, c.in_flight + 1

    def staged(self, c: ClassResults, i: int) -> Path:
        return self.staging / f"{c.bird.slug}-{i}"

    def finished_classes(self, wait: bool) -> Iterator[Found]:
        """Yield every result of the first classes whose downloads are all done; with wait, of every class."""
        while self.classes:
            head = self.classes[0]
            for future in self.completed(block=wait and not head.finished(self.max_num)):
                c, i = self.running.pop(future)
                c.in_flight -= 1
                c.done[i] = as_found(c.bird, c.results[i], future.result(), self.staged(c, i))
                self.hand_out(c)
            if head.finished(self.max_num):
                yield from release(self.classes.pop(0))
            elif not wait:
                return

    def completed(self, block: bool) -> set[concurrent.futures.Future]:
        if not block:
            return {f for f in self.running if f.done()}
        done, _ = concurrent.futures.wait(self.running, return_when=concurrent.futures.FIRST_COMPLETED)
        return done


def release(c: ClassResults) -> Iterator[Found]:
    """The class's results in Bing's order, each image's bytes read from staging only as it is yielded."""
    print(
        f"crawl: {c.bird.slug} ({c.bird.keyword}): {c.next} results, {c.downloaded()} downloaded"
        + (f"; result pages lost: {'; '.join(c.lost_pages)}" if c.lost_pages else "")
    )
    for i in range(c.next):
        f = c.done.pop(i)
        if f.file is not None:
            data = f.file.read_bytes()
            f.file.unlink()
            f = dataclasses.replace(f, data=data, file=None)
        yield f


@dataclass(frozen=True)
class DownloadLimits:
    max_bytes: int  # crawl.max_image_mb
    deadline_s: float  # the whole download, retries included: crawl.bing.download_timeout_s
    timeout_s: float  # connecting, and each wait for bytes: crawl.bing.timeout_s
    tries: int  # 1 + crawl.bing.retries


class Refused(Exception):
    """Why an image is not downloaded: (reason, detail) as the cleaning records them."""


def download(session: requests.Session, url: str, path: Path, limits: DownloadLimits) -> tuple[str, str, str]:
    """Stream the image at `url` into `path`: ("", "", time) when saved, else (reason, detail, time)."""
    deadline = time.monotonic() + limits.deadline_s
    try:
        for attempt in range(limits.tries):
            with session.get(url, stream=True, timeout=limits.timeout_s, headers={"Accept-Encoding": "identity"}) as answer:
                if answer.status_code in RETRY_STATUSES and attempt + 1 < limits.tries:
                    time.sleep(min(BACKOFF_S * 2**attempt, max(0.0, deadline - time.monotonic())))
                    continue  # closed unread: an endless error page costs nothing
                if answer.status_code != 200:
                    raise Refused("fetch_failed", http_failure(answer.status_code, limits.tries))
                save(answer, path, limits, deadline)
                return "", "", now()
    except Refused as e:
        path.unlink(missing_ok=True)
        return (*e.args, now())
    except RefusedAddress as e:
        return "refused_address", str(e), now()
    except requests.RequestException as e:
        path.unlink(missing_ok=True)
        return "fetch_failed", describe_error(e, limits.tries), now()
    raise AssertionError("unreachable: the last try returns or raises")


def save(answer: requests.Response, path: Path, limits: DownloadLimits, deadline: float) -> None:
    """The body into `path`, a chunk at a time, within the byte cap and the deadline."""
    announced = answer.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > limits.max_bytes:
        raise Refused("too_large", f"announced {int(announced):,} bytes, over the cap of {limits.max_bytes:,} (crawl.max_image_mb)")
    size = 0
    with open(path, "wb") as f:
        while chunk := answer.raw.read1(CHUNK):  # what has arrived, up to CHUNK: a slow server is checked on every byte
            size += len(chunk)
            if size > limits.max_bytes:
                raise Refused("too_large", f"over {limits.max_bytes:,} bytes sent, the cap (crawl.max_image_mb); stopped reading")
            if time.monotonic() > deadline:
                raise Refused("download_timed_out", f"{size:,} bytes in {limits.deadline_s:g} s, not done (crawl.bing.download_timeout_s)")
            f.write(chunk)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def as_found(bird: BirdClass, result: dict, outcome: tuple[str, str, str], path: Path) -> Found:
    reason, detail, when = outcome
    saved = path if not reason else None
    return Found(bird.slug, "bing", None, detail, reason or "fetch_failed", saved, result["file_url"], result["page_url"], when)


def http_failure(status: int, tries: int) -> str:
    """`HTTP 500 after 3 tries`: the tries named only where the status was retried."""
    return f"HTTP {status}" + (f" after {tries} tries" if status in RETRY_STATUSES and tries > 1 else "")


def describe_error(error: requests.RequestException, tries: int) -> str:
    reason = getattr(error.args[0], "reason", None) if error.args else None  # urllib3's MaxRetryError
    cause = reason or error
    kind = "timed out" if "timed out" in str(cause).lower() else type(cause).__name__
    return f"{kind} ({tries} tries): {cause}"


# --- HTTP: retries, proxies, and the address guard ---------------------------------------------


class RetryingSession(requests.Session):
    """A session with bounded retries, remembering why each failed URL failed (for result pages)."""

    def __init__(self, retries: int, trust_env: bool):
        super().__init__()
        self.trust_env = trust_env  # proxy settings apply to Bing; a server on this machine is reached directly
        self.headers["User-Agent"] = USER_AGENT
        self.tries = retries + 1
        self.failures: dict[str, str] = {}  # url -> why it failed
        for scheme in ("http://", "https://"):
            self.mount(scheme, HTTPAdapter(max_retries=retry_policy(retries)))

    def get(self, url, **kwargs):
        try:
            response = super().get(url, **kwargs)
        except requests.RequestException as e:
            self.failures[url] = describe_error(e, self.tries)
            raise
        if response.status_code != 200:
            self.failures[url] = http_failure(response.status_code, self.tries)
        return response


def retry_policy(retries: int, statuses: tuple[int, ...] = RETRY_STATUSES) -> Retry:
    return Retry(
        total=retries,
        backoff_factor=BACKOFF_S,
        status_forcelist=statuses,
        allowed_methods={"GET"},
        raise_on_status=False,  # the last answer comes back, and is recorded
        respect_retry_after_header=False,  # a server asking for an hour's pause must not stall the crawl
    )


def search_session(cfg: BingSource) -> RetryingSession:
    return RetryingSession(cfg.retries, trust_env=not is_loopback(cfg.endpoint))


def image_session(cfg: BingSource) -> requests.Session:
    """Images: connection errors and timeouts retried by urllib3; 429/5xx by download() itself, which
    closes such an answer unread (urllib3 would read its whole body first); every direct connection
    through the address guard."""
    session = requests.Session()
    session.trust_env = not is_loopback(cfg.endpoint)
    session.headers["User-Agent"] = USER_AGENT
    guard = None if cfg.allow_private_addresses else AddressGuard(endpoint_addresses(cfg.endpoint))
    for scheme in ("http://", "https://"):
        session.mount(scheme, GuardedAdapter(guard, max_retries=retry_policy(cfg.retries, statuses=())))
    return session


USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RefusedAddress(Exception):
    """An image URL, or a redirect, points at an address the crawl does not fetch from."""


def endpoint_addresses(endpoint: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The search endpoint's own addresses, which its results may point at (a test server, a LAN mirror)."""
    host, port = urlsplit(endpoint).hostname or "", urlsplit(endpoint).port or 443
    try:
        return {address(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        return set()


def address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.split("%")[0])
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


def not_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """What kind of address the crawl refuses `ip` as, or "" for a public one."""
    for kind in ("loopback", "link_local", "multicast", "reserved", "unspecified", "private"):  # private: the rest of the non-public ranges
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return "" if ip.is_global else "non-global"


class AddressGuard:
    def __init__(self, allowed: set):
        self.allowed = allowed

    def resolve(self, host: str, port: int) -> str:
        """The address to connect to for host: every answer checked, the first one used."""
        try:
            answers = [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
        except (socket.gaierror, UnicodeError):
            return host  # urllib3 fails on it again, and says so as for any unknown name
        for answer in answers:
            ip = address(answer)
            if ip not in self.allowed and (kind := not_public(ip)):
                raise RefusedAddress(f"{host} is {ip}, a {kind} address; the crawl fetches images from public addresses only")
        return answers[0]


class GuardedAdapter(HTTPAdapter):
    """Direct connections go to an address the guard checked. Through a proxy, the proxy connects,
    and its own policy applies: the guard does not see the address."""

    def __init__(self, guard: AddressGuard | None, **kwargs):
        self.guard = guard
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        if self.guard is not None:
            self.poolmanager.pool_classes_by_scheme = {
                "http": guarded_pool(HTTPConnectionPool, HTTPConnection, self.guard),
                "https": guarded_pool(HTTPSConnectionPool, HTTPSConnection, self.guard),
            }


def guarded_pool(pool_cls: type, connection_cls: type, guard: AddressGuard) -> type:
    class GuardedConnection(connection_cls):
        def _new_conn(self):
            # urllib3 connects to _dns_host: the checked address, so a second DNS answer cannot differ
            self._dns_host = guard.resolve(self.host, self.port)
            return super()._new_conn()

    return type(f"Guarded{pool_cls.__name__}", (pool_cls,), {"ConnectionCls": GuardedConnection})
