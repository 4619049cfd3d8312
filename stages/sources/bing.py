"""The bing crawl source: Bing image search through icrawler 0.6.10, as the article crawled.

icrawler's BingImageCrawler is built from a feeder (result-page URLs), a parser (image URLs out of
each page) and a downloader. Each is replaced here by a small subclass:

- the feeder takes the endpoint as an argument (icrawler hard-codes www.bing.com), so tests and
  users behind a proxy can point it at another host: crawl.bing.endpoint (a param, so DVC sees it);
- the parser reads each result's `m` attribute as JSON: icrawler's regex keeps only URLs ending in
  .jpg and drops the page an image comes from, which the manifest records;
- the downloader saves every answer with status 200, leaving the verdict (and its reason) to the
  cleaning, and records each result's provenance and outcome in process_meta;
- the queue between parser and downloader mends two icrawler flaws that lose results, and numbers
  the results in the order Bing gave them.

Images download crawl.bing.threads at a time, so a slow or dead image server costs its own
timeout, not everyone's. The crawl keeps what a one-at-a-time crawl would keep: the results in
Bing's order up to the one that makes crawl.bing.max_num downloaded images; the downloads that
finished beyond it (the other threads' work) are dropped.

The HTTP session retries connection errors, timeouts and 5xx answers a bounded number of times.
icrawler's crawl() returns nothing and logs errors instead of raising them, so the outcome of every
result page and image is checked here.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import queue
import threading
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode, urlsplit

import requests
from bs4 import BeautifulSoup
from icrawler import Crawler, ImageDownloader
from icrawler.builtin.bing import BingFeeder, BingParser
from icrawler.utils import Session
from icrawler.utils.cached_queue import CachedQueue
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from stages.sources.cleaning import CrawlError, Found
from stages.params import BirdClass, BingFilters, BingSource, Params

PAGE_STEP = 20  # icrawler's Bing feeder asks for every 20th result (Bing answers up to 35 a page)
BACKOFF_S = 0.5  # urllib3 sleeps 0, 2x, 4x ... this between retries
RETRY_STATUSES = (429, 500, 502, 503, 504)
POLL_S = 0.2  # how often waiting threads look again

OFFLINE_HINT = (
    "Without network, crawl offline: crawl.source: synthetic (built in) or crawl.source: folder with "
    "crawl.folder.path (your own images), e.g. `dvc exp run -S crawl.source=synthetic`. Behind a proxy, "
    "set HTTPS_PROXY, or point crawl.bing.endpoint at a host you can reach."
)


class BingUnreachable(CrawlError):
    """No result page could be read."""


def find_images(params: Params) -> Iterator[Found]:
    """The crawl's bing source: one search per class of params, with crawl.bing's settings."""
    return search(list(params.classes), params.crawl.bing)


def search(classes: list[BirdClass], cfg: BingSource) -> Iterator[Found]:
    """Search Bing once per class with its keyword; yield every result, downloaded or not."""
    url = cfg.endpoint
    print(f"crawl: searching {url} for {len(classes)} classes, up to {cfg.max_num} images each")
    for c in classes:
        with tempfile.TemporaryDirectory(prefix="bing-") as staging:
            yield from crawl_class(c, cfg, url, Path(staging))


def crawl_class(bird: BirdClass, cfg: BingSource, url: str, staging: Path) -> list[Found]:
    crawler = BingCrawler(cfg.retries, cfg.threads, trust_env=not is_loopback(url), root_dir=staging)
    crawler.crawl(
        feeder_kwargs=dict(endpoint=url, keyword=bird.keyword, max_num=cfg.max_num, filters=filter_options(cfg.filters)),
        parser_kwargs=dict(queue_timeout=POLL_S, req_timeout=cfg.timeout_s, max_retry=1),  # retries: the session's
        downloader_kwargs=dict(max_num=cfg.max_num, req_timeout=cfg.timeout_s, max_retry=1),
    )
    crawler.signal.set(reach_max_num=True)  # lets go a parser thread still waiting to hand over results
    pages, failures = crawler.feeder.page_urls, crawler.session.failures
    if crawler.parser.pages_read == 0:
        first_page = pages[0] if pages else url  # none queued: the feeder failed
        raise BingUnreachable(
            f"could not read Bing's results for class {bird.slug} ({bird.keyword}) at {first_page}: "
            f"{failures.get(first_page, 'no answer')}. {OFFLINE_HINT}"
        )
    found = []
    for r in crawler.downloader.in_result_order():
        data = (staging / r["filename"]).read_bytes() if r["filename"] else None
        found.append(Found(bird.slug, "bing", data, r["error"], r["url"], r["page_url"], r["time"]))
    failed_pages = [f"{failures[p]} at first={i * PAGE_STEP}" for i, p in enumerate(pages) if p in failures]
    print(
        f"crawl: {bird.slug} ({bird.keyword}): {len(found)} results, {sum(f.data is not None for f in found)} downloaded"
        + (f"; result pages lost: {'; '.join(failed_pages)}" if failed_pages else "")
    )
    return found


def filter_options(filters: BingFilters) -> dict:
    """params' filters in icrawler's terms ({"type": "photo", ...}), leaving out those set to any."""
    return {k: v for k, v in vars(filters).items() if v != "any"}


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RetryingSession(Session):
    """icrawler's session with bounded retries, remembering why each failed URL failed."""

    def __init__(self, proxy_pool, retries: int):
        super().__init__(proxy_pool)
        retry = Retry(
            total=retries,
            backoff_factor=BACKOFF_S,
            status_forcelist=RETRY_STATUSES,
            allowed_methods={"GET"},
            raise_on_status=False,  # the last answer comes back, and is recorded below
            respect_retry_after_header=False,  # a server asking for an hour's pause must not stall the crawl
        )
        self.mount("http://", HTTPAdapter(max_retries=retry))
        self.mount("https://", HTTPAdapter(max_retries=retry))
        self.tries = retries + 1
        self.failures: dict[str, str] = {}  # url -> why it failed

    def get(self, url, **kwargs):
        try:
            response = super().get(url, **kwargs)
        except requests.RequestException as e:
            self.failures[url] = describe_error(e, self.tries)
            raise
        if response.status_code != 200:
            tried = f" after {self.tries} tries" if response.status_code in RETRY_STATUSES and self.tries > 1 else ""
            self.failures[url] = f"HTTP {response.status_code}{tried}"
        return response


def describe_error(error: requests.RequestException, tries: int) -> str:
    reason = getattr(error.args[0], "reason", None) if error.args else None  # urllib3's MaxRetryError
    cause = reason or error
    kind = "timed out" if "timed out" in str(cause).lower() else type(cause).__name__
    return f"{kind} ({tries} tries): {cause}"


class EndpointFeeder(BingFeeder):
    """BingFeeder's result-page URLs, at a given endpoint, with the keyword URL-encoded."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.page_urls: list[str] = []  # the result pages queued, in order

    def feed(self, endpoint, keyword, max_num, filters=None):
        qft = self.get_filter().apply(filters)
        for first in range(0, max_num, PAGE_STEP):
            url = f"{endpoint}?{urlencode({'q': keyword, 'first': first})}" + (f"&qft={qft}" if qft else "")
            self.page_urls.append(url)
            self.out_queue.put(url)
        # One feeder thread: the parser may stop once the queue is empty, without waiting for
        # BingCrawler.crawl() to see that this thread ended.
        self.signal.set(feeder_exited=True)


class JsonParser(BingParser):
    """Every result of a page: `m` is JSON with the image URL (murl) and its page (purl)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pages_read = 0

    def worker_exec(self, **kwargs):
        super().worker_exec(**kwargs)
        self.signal.set(parser_exited=True)  # one parser thread: as for the feeder above

    def parse(self, response, **kwargs):
        if response.status_code != 200:
            return  # the session has recorded why
        self.pages_read += 1
        soup = BeautifulSoup(response.content.decode("utf-8", "ignore"), "lxml")
        for link in soup.select("div.imgpt a.iusc[m]"):
            try:
                meta = json.loads(link["m"])  # BeautifulSoup has already unescaped the attribute
            except json.JSONDecodeError:
                continue
            if not isinstance(meta, dict):
                continue  # an error here would end the parser's thread, and the crawl of the class
            image_url, page_url = meta.get("murl"), meta.get("purl")
            if isinstance(image_url, str) and image_url.startswith(("http://", "https://")):
                yield dict(file_url=image_url, page_url=page_url if isinstance(page_url, str) else "")


class ProvenanceDownloader(ImageDownloader):
    """Saves every 200 answer and records, for each result, its URLs, file (or why not) and time.

    Several threads download at once, and finish in any order. The crawl ends once the results
    in Bing's order, from the first one on, are all finished and hold max_num downloads: what a
    one-at-a-time crawl would have kept, whatever the threads' timing."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.results: dict[int, dict] = {}  # result index -> outcome
        self.results_lock = threading.Lock()

    def keep_file(self, task, response, **kwargs):
        return True  # the cleaning decides, and writes down why

    def reach_max_num(self):
        if self.signal.get("reach_max_num"):
            return True
        return self.max_num > 0 and len(self.in_result_order()) >= self.max_num and self.prefix_downloads() >= self.max_num

    def prefix_downloads(self) -> int:
        return sum(r["filename"] is not None for r in self.in_result_order())

    def in_result_order(self) -> list[dict]:
        """The finished results from the first on, without gaps, up to the max_num-th download."""
        with self.results_lock:
            done = dict(self.results)
        prefix, downloads = [], 0
        while len(prefix) in done and (self.max_num <= 0 or downloads < self.max_num):
            prefix.append(done[len(prefix)])
            downloads += prefix[-1]["filename"] is not None
        return prefix

    def process_meta(self, task):
        error = "" if task["success"] else self.session.failures.get(task["file_url"], "not downloaded")
        result = dict(
            url=task["file_url"], page_url=task["page_url"], filename=task["filename"],  # icrawler's: None unless saved
            error=error, time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        with self.results_lock:
            self.results[task["index"]] = result
        if self.reach_max_num():
            self.signal.set(reach_max_num=True)  # the other threads take no more results


class TaskQueue(CachedQueue):
    """The parser-to-downloader queue, mending two flaws of icrawler's:
    - put(): icrawler marks a task as seen before putting it, so when the queue stays full for a
      second (the downloader busy with a slow image) the parser's retry is dropped as a duplicate
      and the result is lost. Here a put waits for room, until the crawl stops.
    - get(): icrawler's downloader stops waiting for tasks after a timeout even while the parser is
      still fetching a slow result page. Here a get waits for as long as the parser runs.
    Each new result gets its index in Bing's order (one parser thread puts them)."""

    def __init__(self, signal, maxsize: int):
        super().__init__(maxsize)
        self.signal = signal
        self.next_index = 0

    def put(self, item, block=True, timeout=None, dup_callback=None):
        if self.is_duplicated(item):
            return
        item["index"], self.next_index = self.next_index, self.next_index + 1
        while not self.signal.get("reach_max_num"):
            try:
                return queue.Queue.put(self, item, timeout=POLL_S)  # not CachedQueue's: seen already
            except queue.Full:
                pass

    def get(self, block=True, timeout=None):
        while True:
            try:
                return super().get(block, timeout=POLL_S)
            except queue.Empty:
                if self.signal.get("parser_exited"):
                    raise


class BingCrawler(Crawler):
    """icrawler's Crawler with the parts above, for one search (keyword): one crawl() call."""

    def __init__(self, retries: int, threads: int, trust_env: bool, root_dir: Path):
        self.retries, self.trust_env = retries, trust_env
        super().__init__(
            feeder_cls=EndpointFeeder,
            parser_cls=JsonParser,
            downloader_cls=ProvenanceDownloader,
            downloader_threads=threads,  # numbered by result order all the same (ProvenanceDownloader)
            storage={"backend": "FileSystem", "root_dir": str(root_dir)},
            log_level=logging.WARNING,
        )
        self.parser.out_queue = self.downloader.in_queue = TaskQueue(self.signal, self.parser.out_queue.maxsize)

    def crawl(self, feeder_kwargs, parser_kwargs, downloader_kwargs):
        """icrawler's crawl(), looking every POLL_S instead of every second whether the threads
        are done (which cost every class up to a second after its last download). A feeder or
        parser thread that died is seen here too, and lets the threads after it stop."""
        self.feeder.start(**feeder_kwargs)
        self.parser.start(**parser_kwargs)
        self.downloader.start(**downloader_kwargs)
        while self.downloader.is_alive():
            if not self.feeder.is_alive():
                self.signal.set(feeder_exited=True)
            if not self.parser.is_alive():
                self.signal.set(parser_exited=True)
            time.sleep(POLL_S)

    def set_session(self, headers=None):
        super().set_session(headers)  # icrawler's browser-like headers
        session = RetryingSession(self.proxy_pool, self.retries)
        session.headers.update(self.session.headers)
        # Proxy settings from the environment apply to Bing; a server on this machine is reached directly.
        session.trust_env = self.trust_env
        self.session = session
