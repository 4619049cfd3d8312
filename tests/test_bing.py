"""The bing source against a fake Bing on 127.0.0.1: icrawler's real feeder, parser and downloader."""

import hashlib
import html
import socket
from pathlib import Path

import pytest
import requests
import urllib3
from icrawler.utils import Signal

from helpers.fake_bing import Served
from helpers.images import encode, picture
from helpers.nasty_files import bomb_png
from helpers.project import params_file, tiny_params
from stages.sources import bing
from stages.sources.cleaning import Found, clean
from stages.shared.params import BingFilters, BingSource, BirdClass, load_params

MYNA = BirdClass(slug="myna", keyword="ハッカチョウ")
WARBLER = BirdClass(slug="reed_warbler", keyword="ヨシキリ")
SUNBIRD = BirdClass(slug="sunbird", keyword="タイヨウチョウ")
RETRIES = 1


def crawl(fake, classes, dest, **options):
    cfg = BingSource(endpoint=fake.endpoint, timeout_s=0.5, retries=RETRIES, **({"max_num": 10} | options))
    return clean(bing.search(classes, cfg), dest, min_side=64, near_duplicate_distance=4)


def test_clean_crawl_of_several_classes_keeps_every_format_and_its_provenance(fake_bing, tmp_path, capsys):
    served = {}
    for k, bird in enumerate([MYNA, WARBLER, SUNBIRD]):
        for i in range(3):
            served[f"{bird.slug}{i}.jpg"] = encode(picture(10 * k + i))
            fake_bing.add(bird.keyword, f"{bird.slug}{i}.jpg", Served(served[f"{bird.slug}{i}.jpg"]))
    served["gull.png"] = encode(picture(40), "PNG")
    served["tern.webp"] = encode(picture(41), "WEBP", quality=90)
    served["png-as.jpg"] = encode(picture(42), "PNG")  # the URL's extension is wrong
    fake_bing.add(SUNBIRD.keyword, "gull.png", Served(served["gull.png"], "image/png"))
    fake_bing.add(SUNBIRD.keyword, "tern.webp", Served(served["tern.webp"], "image/webp"))
    fake_bing.add(SUNBIRD.keyword, "png-as.jpg?w=1&h=2", Served(served["png-as.jpg"], "image/png"))

    cleaned = crawl(fake_bing, [MYNA, WARBLER, SUNBIRD], tmp_path, filters=BingFilters(type="photo", license="creativecommons"))

    assert cleaned.rejected == []
    assert dict(cleaned.found) == {"myna": 3, "reed_warbler": 3, "sunbird": 6}
    by_url = {k.found.url.removeprefix(f"{fake_bing.base}/img/"): k for k in cleaned.kept}
    assert set(by_url) == set(served) - {"png-as.jpg"} | {"png-as.jpg?w=1&h=2"}  # '&' survives the JSON
    assert by_url["gull.png"].name == "sunbird/sunbird_003.png"
    assert by_url["tern.webp"].name == "sunbird/sunbird_004.webp"
    assert by_url["png-as.jpg?w=1&h=2"].name == "sunbird/sunbird_005.png"
    for name, k in by_url.items():
        data = (tmp_path / k.name).read_bytes()
        assert data == served[name.split("?")[0]]  # upright RGB already: saved byte for byte
        assert k.sha256 == hashlib.sha256(data).hexdigest() and k.size == len(data)
        assert k.found.page_url == f"https://example.org/birds/{name}.html"
        assert k.found.source == "bing" and k.found.time.endswith("+00:00")
    assert [q["q"] for q in fake_bing.queries] == ["ハッカチョウ", "ヨシキリ", "タイヨウチョウ"]
    assert all(q["qft"] == " filterui:photo-photo filterui:licenseType-Any" for q in fake_bing.queries)
    assert capsys.readouterr().out.splitlines() == [
        f"crawl: searching {fake_bing.endpoint} for 3 classes, up to 10 images each",
        "crawl: myna (ハッカチョウ): 3 results, 3 downloaded",
        "crawl: reed_warbler (ヨシキリ): 3 results, 3 downloaded",
        "crawl: sunbird (タイヨウチョウ): 6 results, 6 downloaded",
    ]


def test_faults_are_rejected_with_their_reason_and_retries_are_bounded(fake_bing, tmp_path, capsys):
    original = encode(picture(1))
    fake_bing.add(MYNA.keyword, "ok.jpg", Served(original))
    fake_bing.add(MYNA.keyword, "missing.jpg", Served(status=404))
    fake_bing.add(MYNA.keyword, "error.jpg", Served(status=500))
    fake_bing.add(MYNA.keyword, "flaky.jpg", Served(encode(picture(2)), fail_first=1))
    fake_bing.add(MYNA.keyword, "slow.jpg", Served(encode(picture(3)), delay_s=1.5))
    fake_bing.add(MYNA.keyword, "truncated.jpg", Served(encode(picture(4))[:900]))
    fake_bing.add(MYNA.keyword, "page.jpg", Served(b"<!DOCTYPE html><html><body>Access denied</body></html>", "text/html"))
    fake_bing.add(MYNA.keyword, "huge.png", Served(bomb_png(), "image/png"))
    fake_bing.add(MYNA.keyword, "icon.jpg", Served(encode(picture(5, (48, 36)))))
    fake_bing.add(MYNA.keyword, "copy.jpg", Served(original))  # the same image under two URLs
    fake_bing.add(MYNA.keyword, "smaller.jpg", Served(encode(picture(1).resize((112, 84)), quality=70)))
    fake_bing.add(MYNA.keyword, "both.jpg", Served(encode(picture(6))))
    fake_bing.add(WARBLER.keyword, "both.jpg")  # the same image under two classes
    fake_bing.add(WARBLER.keyword, "warbler.jpg", Served(encode(picture(7))))

    # 40 asked: two result pages; the second has no results, the first fewer than asked.
    cleaned = crawl(fake_bing, [MYNA, WARBLER], tmp_path, max_num=40)

    reasons = {r.found.url.rsplit("/", 1)[1]: (r.reason, r.detail) for r in cleaned.rejected}
    assert reasons.pop("missing.jpg") == ("fetch_failed", "HTTP 404")
    assert reasons.pop("error.jpg") == ("fetch_failed", f"HTTP 500 after {RETRIES + 1} tries")
    reason, detail = reasons.pop("slow.jpg")
    assert reason == "fetch_failed" and detail.startswith(f"timed out ({RETRIES + 1} tries)")
    assert reasons.pop("truncated.jpg")[0] == "broken"
    assert reasons.pop("page.jpg") == ("not_an_image", "an HTML page, not an image")
    assert reasons.pop("huge.png")[0] == "decompression_bomb"
    assert reasons.pop("icon.jpg") == ("too_small", "48x36, shorter side under 64")
    assert reasons.pop("copy.jpg") == ("exact_duplicate", "same bytes as myna/myna_000.jpg")
    reason, detail = reasons.pop("smaller.jpg")
    assert reason == "near_duplicate" and detail.endswith("bits from myna/myna_000.jpg")
    assert reasons == {"both.jpg": ("in_several_classes", f"also under myna: {fake_bing.base}/img/both.jpg")}
    assert sorted(r.found.label for r in cleaned.rejected if r.reason == "in_several_classes") == ["myna", "reed_warbler"]

    assert [(k.name, k.found.url.rsplit("/", 1)[1]) for k in cleaned.kept] == [
        ("myna/myna_000.jpg", "ok.jpg"),
        ("myna/myna_001.jpg", "flaky.jpg"),
        ("reed_warbler/reed_warbler_000.jpg", "warbler.jpg"),
    ]
    assert dict(cleaned.found) == {"myna": 12, "reed_warbler": 2}
    assert fake_bing.hits["/img/error.jpg"] == fake_bing.hits["/img/slow.jpg"] == RETRIES + 1
    assert fake_bing.hits["/img/flaky.jpg"] == 2 and fake_bing.hits["/img/missing.jpg"] == 1
    assert [q["first"] for q in fake_bing.queries if q["q"] == MYNA.keyword] == ["0", "20"]
    summary = cleaned.summary(["myna", "reed_warbler"]).splitlines()
    occurred = ["fetch_failed", "not_an_image", "broken", "decompression_bomb", "too_small", "exact_duplicate",
                "near_duplicate", "in_several_classes"]  # in the order of REASONS
    assert summary[0].split() == ["class", "found", "kept", *occurred]
    assert summary[1].split() == ["myna", "12", "2", "3", "1", "1", "1", "1", "1", "1", "1"]
    assert summary[3].split() == ["total", "14", "3", "3", "1", "1", "1", "1", "1", "1", "2"]
    assert capsys.readouterr().out.splitlines()[1:] == ["crawl: myna (ハッカチョウ): 12 results, 9 downloaded",
                                                        "crawl: reed_warbler (ヨシキリ): 2 results, 2 downloaded"]


def test_the_crawl_searches_each_class_of_params_with_its_crawl_bing_settings(fake_bing, tmp_path):
    raw = tiny_params()
    raw["crawl"].update(source="bing")
    raw["crawl"]["bing"].update(endpoint=fake_bing.endpoint, max_num=2, timeout_s=0.5, retries=RETRIES)
    slugs = [c["slug"] for c in raw["classes"]]
    for k, bird in enumerate(raw["classes"]):
        for i in range(3):
            fake_bing.add(bird["keyword"], f"{bird['slug']}{i}.jpg", Served(encode(picture(3 * k + i))))
    found = list(bing.find_images(load_params(path=params_file(tmp_path, raw))))
    assert [(f.label, f.url.rsplit("/", 1)[1]) for f in found] == [(s, f"{s}{i}.jpg") for s in slugs for i in range(2)]


def six_myna_pictures(fake):
    for i in range(6):
        fake.add(MYNA.keyword, f"m{i}.jpg", Served(encode(picture(i))))


@pytest.mark.parametrize("max_num", [1, 4])
def test_max_num_caps_the_downloads_of_a_class(fake_bing, tmp_path, max_num):
    six_myna_pictures(fake_bing)
    cleaned = crawl(fake_bing, [MYNA], tmp_path, max_num=max_num)
    assert [k.found.url.rsplit("/", 1)[1] for k in cleaned.kept] == [f"m{i}.jpg" for i in range(max_num)]
    assert cleaned.rejected == []


def test_one_thread_fetches_nothing_past_the_max_num_th_download(fake_bing, tmp_path):
    six_myna_pictures(fake_bing)
    crawl(fake_bing, [MYNA], tmp_path, max_num=1, threads=1)
    assert {p: n for p, n in fake_bing.hits.items() if p.startswith("/img/")} == {"/img/m0.jpg": 1}


def test_a_failed_answer_says_after_how_many_tries_only_when_it_was_retried(fake_bing, tmp_path):
    fake_bing.add(MYNA.keyword, "broken.jpg", Served(status=500))
    url = f"{fake_bing.base}/img/broken.jpg"
    for retries, failure in [(0, "HTTP 500"), (1, "HTTP 500 after 2 tries")]:
        session = bing.RetryingSession(retries, trust_env=False)
        assert session.get(url, timeout=5).status_code == 500
        assert session.failures == {url: failure}
        limits = bing.DownloadLimits(max_bytes=2**20, deadline_s=10, timeout_s=5, tries=retries + 1)
        reason, detail, _ = bing.download(requests.Session(), url, tmp_path / "image", limits)
        assert (reason, detail) == ("fetch_failed", failure) and not (tmp_path / "image").exists()


def test_result_page_errors_are_retried_then_reported(fake_bing):
    fake_bing.page_status = 500
    with pytest.raises(bing.BingUnreachable, match=f"HTTP 500 after {RETRIES + 1} tries.*crawl.source: synthetic"):
        list(bing.search([MYNA], BingSource(endpoint=fake_bing.endpoint, timeout_s=0.5, retries=RETRIES, max_num=10)))
    assert fake_bing.hits["/images/async"] == RETRIES + 1


def test_a_result_page_that_times_out_is_tried_as_often_as_the_session_retries(fake_bing):
    """The session retries; the parser on top of it must not (icrawler's parser tries 3 times), nor
    wait longer than crawl.bing.timeout_s (its own default is 5 s)."""
    fake_bing.add(MYNA.keyword, "ok.jpg", Served(encode(picture(1))))
    fake_bing.page_delay_s = 1.0
    with pytest.raises(bing.BingUnreachable, match=f"at {fake_bing.endpoint}.*: timed out \\({RETRIES + 1} tries\\)"):
        list(bing.search([MYNA], BingSource(endpoint=fake_bing.endpoint, timeout_s=0.3, retries=RETRIES, max_num=10)))
    assert fake_bing.hits["/images/async"] == RETRIES + 1


def test_lost_result_pages_are_reported_and_the_others_are_kept(fake_bing, tmp_path, capsys):
    for i in range(80):  # Bing's pages overlap: first=0 holds results 0-34, first=20 results 20-54, ...
        fake_bing.add(MYNA.keyword, f"m{i}.jpg", Served(b"x"))
    fake_bing.failing_pages = {20, 60}
    found = list(bing.search([MYNA], BingSource(endpoint=fake_bing.endpoint, timeout_s=0.5, retries=RETRIES, max_num=80)))
    assert [f.url.rsplit("/", 1)[1] for f in found] == [f"m{i}.jpg" for i in [*range(35), *range(40, 75)]]
    assert all(f.data == b"x" and f.error == "" for f in found)
    lost = f"HTTP 500 after {RETRIES + 1} tries"
    assert capsys.readouterr().out.splitlines()[1] == (
        f"crawl: myna (ハッカチョウ): 70 results, 70 downloaded; result pages lost: {lost} at first=20; {lost} at first=60")


def test_no_network_fails_with_how_to_run_offline():
    closed = f"http://127.0.0.1:{closed_port()}/images/async"
    with pytest.raises(bing.BingUnreachable) as err:
        list(bing.search([MYNA, WARBLER], BingSource(endpoint=closed, timeout_s=1.0, retries=1)))
    message = str(err.value)
    assert f"class myna ({MYNA.keyword}) at {closed}?" in message
    assert "crawl.source: synthetic" in message and "crawl.source: folder" in message


def test_parallel_downloads_keep_result_order_and_what_one_thread_would_keep(fake_bing, tmp_path):
    """Slow images early in the results finish last; the files are numbered by result order all
    the same, and max_num keeps the first results, as a one-at-a-time crawl would."""
    for i in range(8):
        fake_bing.add(MYNA.keyword, f"m{i}.jpg", Served(encode(picture(i)), delay_s=0.3 if i in (0, 2) else 0.0))
    fake_bing.add(MYNA.keyword, "gone.jpg", Served(status=404))
    for i in range(8, 12):
        fake_bing.add(MYNA.keyword, f"m{i}.jpg", Served(encode(picture(i))))

    cleaned = crawl(fake_bing, [MYNA], tmp_path, max_num=9, threads=4)

    assert [(k.name, k.found.url.rsplit("/", 1)[1]) for k in cleaned.kept] == [
        (f"myna/myna_{i:03d}.jpg", f"m{i}.jpg") for i in range(9)
    ]
    assert [(r.found.url.rsplit("/", 1)[1], r.reason) for r in cleaned.rejected] == [("gone.jpg", "fetch_failed")]


def test_proxy_settings_apply_to_bing_and_not_to_a_server_on_this_machine(fake_bing, tmp_path, monkeypatch):
    # README: behind a proxy, set HTTPS_PROXY (here HTTP_PROXY: the stand-in speaks plain HTTP)
    fake_bing.add(MYNA.keyword, "ok.jpg", Served(encode(picture(1))))
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, fake_bing.base)  # the fake answers as the proxy too
    cfg = BingSource(endpoint="http://bing.example/images/async", timeout_s=0.5, retries=RETRIES, max_num=10)
    through_proxy = clean(bing.search([MYNA], cfg), tmp_path / "proxy", min_side=64, near_duplicate_distance=4)
    assert len(through_proxy.kept) == 1
    assert fake_bing.proxied[0].startswith("http://bing.example/images/async?q=")

    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port()}")  # a proxy that does not answer
    assert len(crawl(fake_bing, [MYNA], tmp_path / "direct").kept) == 1  # 127.0.0.1 is reached directly
    assert bing.is_loopback("http://localhost:8080/x") and bing.is_loopback("http://[::1]:9/")
    assert not bing.is_loopback("https://www.bing.com/images/async")


def closed_port() -> int:
    """A port nothing listens on: connections to it are refused, as offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def page(status: int, body: str, junk: bytes = b"") -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body.encode() + junk
    return response


def test_the_parser_keeps_web_images_with_their_page_and_skips_the_rest(tmp_path):
    parser = bing.JsonParser(1, Signal(), None)
    links = [
        '{"murl": "https://a.example/1.jpg", "purl": "https://a.example/p1"}',
        '{"murl": "http://b.example/2.png"}',  # no page: recorded empty
        '{"murl": "data:image/png;base64,AAAA", "purl": "x"}',  # not on the web
        '{"murl": "ftp://c.example/3.jpg"}',
        "not json",
        '{"purl": "https://d.example/p4"}',  # no image
        '["https://e.example/5.jpg"]', '"https://f.example/6.jpg"', '{"murl": 7}',  # JSON, but not a result
        '{"murl": "https://g.example/8.jpg", "purl": null}',
    ]
    body = "".join(f'<div class="imgpt"><a class="iusc" m="{html.escape(m)}"></a></div>' for m in links)
    results = [
        {"file_url": "https://a.example/1.jpg", "page_url": "https://a.example/p1"},
        {"file_url": "http://b.example/2.png", "page_url": ""},
        {"file_url": "https://g.example/8.jpg", "page_url": ""},
    ]
    assert list(parser.parse(page(200, body))) == results
    assert list(parser.parse(page(200, body, junk=b"\xff\xfe"))) == results  # bytes that are not UTF-8 cost nothing


def test_bing_over_https_is_retried_as_the_fake_over_http():
    """Bing answers over https, which no test reaches offline: its requests get the retries the
    tests see over http (a bounded number, GET only, the 429 and 5xx answers, the last answer kept
    and recorded, a Retry-After of an hour not obeyed)."""
    session = bing.RetryingSession(2, trust_env=True)
    for url in ("https://www.bing.com/images/async", "http://127.0.0.1:8080/images/async"):
        retry = session.get_adapter(url).max_retries
        assert (retry.total, retry.backoff_factor, retry.allowed_methods, set(retry.status_forcelist)) == \
            (2, bing.BACKOFF_S, {"GET"}, {429, 500, 502, 503, 504}), url
        assert not retry.raise_on_status and not retry.respect_retry_after_header, url
    assert session.tries == 3


def test_errors_say_what_failed_and_after_how_many_tries():
    refused = requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, "http://x", urllib3.exceptions.NewConnectionError(None, "Connection refused")))
    assert bing.describe_error(refused, 2) == "NewConnectionError (2 tries): None: Connection refused"
    assert bing.describe_error(requests.exceptions.ReadTimeout("Read timed out. (read timeout=0.5)"), 3) == \
        "timed out (3 tries): Read timed out. (read timeout=0.5)"
    assert bing.describe_error(requests.exceptions.ConnectionError(), 1) == "ConnectionError (1 tries): "


def test_filters_set_to_any_are_left_out():
    assert bing.filter_options(BingFilters()) == {}
    assert bing.filter_options(BingFilters(type="photo", size=">800x600")) == {"type": "photo", "size": ">800x600"}
    assert bing.is_loopback("http://127.0.0.2:81/") and not bing.is_loopback("http://10.0.0.1/")
    assert not bing.is_loopback("http://bing.com.localhost.example/") and not bing.is_loopback("no url")


def test_a_class_hands_out_no_more_downloads_than_it_still_needs():
    """What a one-at-a-time crawl keeps, with downloads in parallel: results are handed out in
    Bing's order, at most as many at once as downloads are still missing; a failure makes room
    for the next result."""
    c = bing.ClassResults(MYNA, [{"file_url": f"u{i}"} for i in range(5)], [])
    assert c.wanted(max_num=2) == 2
    c.next, c.in_flight = 2, 2
    assert c.wanted(2) == 0 and not c.finished(2)
    c.in_flight, c.done[0] = 1, Found("myna", "bing", None, "HTTP 404")  # result 0 failed
    assert c.wanted(2) == 1
    c.next, c.in_flight, c.done[1] = 3, 1, Found("myna", "bing", None, file=Path("1"))
    c.in_flight, c.done[2] = 0, Found("myna", "bing", None, file=Path("2"))
    assert c.downloaded() == 2 and c.wanted(2) == 0 and c.finished(2)
    assert c.wanted(max_num=10) == 2  # more wanted than results left: the results left
