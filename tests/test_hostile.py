"""No server breaks a crawl: bodies that never end, lengths that lie, a byte a second, redirects to
addresses the crawl must not reach, names that answer differently twice, and slow servers in
every class. Each is a local server on 127.0.0.1 (tests/fake_bing.py) that misbehaves on purpose;
each image ends with its own reason in the rejects, and the crawl goes on."""

import socket

from helpers.fake_bing import Served
from helpers.images import encode, picture
from stages.shared.params import BingSource, BirdClass
from stages.sources import bing
from stages.sources.cleaning import clean

MYNA = BirdClass(slug="myna", keyword="ハッカチョウ")
WARBLER = BirdClass(slug="reed_warbler", keyword="ヨシキリ")
SUNBIRD = BirdClass(slug="sunbird", keyword="タイヨウチョウ")
CAP_MB = 1


def crawl(fake, classes, dest, **options):
    cfg = BingSource(endpoint=fake.endpoint, retries=0, **({"max_num": 10, "timeout_s": 1.0} | options))
    return clean(bing.search(classes, cfg, max_image_mb=CAP_MB), dest, min_side=64, near_duplicate_distance=4)


def verdicts(cleaned) -> dict[str, tuple[str, str]]:
    return {r.found.url.rsplit("/", 1)[1]: (r.reason, r.detail) for r in cleaned.rejected}


def test_endless_lying_and_trickling_bodies_are_cut_off_and_the_good_images_kept(fake_bing, tmp_path):
    good = encode(picture(1))
    fake_bing.add(MYNA.keyword, "endless.jpg", Served(endless=True))
    fake_bing.add(MYNA.keyword, "liar.jpg", Served(length=5 * 2**30))  # announces 5 GiB
    fake_bing.add(MYNA.keyword, "trickle.jpg", Served(encode(picture(2)), trickle_s=0.1))  # 10 bytes a second
    fake_bing.add(MYNA.keyword, "good.jpg", Served(good))

    cleaned = crawl(fake_bing, [MYNA], tmp_path, download_timeout_s=1.5)

    cap = CAP_MB * 2**20
    assert verdicts(cleaned) == {
        "endless.jpg": ("too_large", f"over {cap:,} bytes sent, the cap (crawl.max_image_mb); stopped reading"),
        "liar.jpg": ("too_large", f"announced {5 * 2**30:,} bytes, over the cap of {cap:,} (crawl.max_image_mb)"),
        "trickle.jpg": ("download_timed_out", verdicts(cleaned)["trickle.jpg"][1]),
    }
    assert verdicts(cleaned)["trickle.jpg"][1].endswith(" bytes in 1.5 s, not done (crawl.bing.download_timeout_s)")
    assert [(k.name, (tmp_path / k.name).read_bytes()) for k in cleaned.kept] == [("myna/myna_000.jpg", good)]
    # read no further than the cap: the rest stayed in the server's and the kernel's buffers
    assert fake_bing.sent["/img/endless.jpg"] < cap + 32 * 2**20
    assert fake_bing.sent["/img/liar.jpg"] < 32 * 2**20  # refused on its header
    assert 5 < fake_bing.sent["/img/trickle.jpg"] < 30  # a byte every 0.1 s for 1.5 s, then cut off


def test_image_urls_and_redirects_to_private_addresses_are_refused_unread(fake_bing, tmp_path):
    port = fake_bing.server.server_port
    fake_bing.add(MYNA.keyword, "ok.jpg", Served(encode(picture(1))))  # on the endpoint's own address: fetched
    fake_bing.add(MYNA.keyword, "to-loopback.jpg", Served(location=f"http://127.0.0.2:{port}/img/ok.jpg"))
    fake_bing.add(MYNA.keyword, "http://169.254.169.254/latest/meta-data/iam")  # a cloud machine's metadata
    fake_bing.add(MYNA.keyword, f"http://[::1]:{port}/img/ok.jpg?v6")
    fake_bing.add(MYNA.keyword, "http://10.1.2.3/router.jpg")
    fake_bing.add(MYNA.keyword, "http://[::ffff:192.168.0.1]/mapped.jpg")  # an IPv4 address written as IPv6

    cleaned = crawl(fake_bing, [MYNA], tmp_path)

    public_only = "the crawl fetches images from public addresses only"
    assert verdicts(cleaned) == {
        "to-loopback.jpg": ("refused_address", f"127.0.0.2 is 127.0.0.2, a loopback address; {public_only}"),
        "iam": ("refused_address", f"169.254.169.254 is 169.254.169.254, a link-local address; {public_only}"),
        "ok.jpg?v6": ("refused_address", f"::1 is ::1, a loopback address; {public_only}"),
        "router.jpg": ("refused_address", f"10.1.2.3 is 10.1.2.3, a private address; {public_only}"),
        "mapped.jpg": ("refused_address", f"::ffff:192.168.0.1 is 192.168.0.1, a private address; {public_only}"),
    }
    assert [k.found.url.rsplit("/", 1)[1] for k in cleaned.kept] == ["ok.jpg"]
    assert fake_bing.hits["/img/ok.jpg"] == 1  # the redirect was not followed, not even to a server that is there


def test_a_param_lets_private_addresses_through(fake_bing, tmp_path):
    port = fake_bing.server.server_port
    fake_bing.add(MYNA.keyword, "to-loopback.jpg", Served(location=f"http://127.0.0.2:{port}/img/ok.jpg"))

    cleaned = crawl(fake_bing, [MYNA], tmp_path, allow_private_addresses=True)

    (reason, detail), = verdicts(cleaned).values()  # followed: nothing listens on 127.0.0.2
    assert reason == "fetch_failed" and "Connection refused" in detail


def test_the_address_checked_is_the_address_connected_to(fake_bing, tmp_path, monkeypatch):
    """A name that answers an allowed address first and a refused one after (DNS rebinding): the
    download connects to the address that was checked, never to a second answer."""
    answers = {"first": True}
    resolve = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "birds.test":
            host, answers["first"] = ("127.0.0.1" if answers["first"] else "127.0.0.2"), False
        return resolve(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    fake_bing.add(MYNA.keyword, f"http://birds.test:{fake_bing.server.server_port}/img/ok.jpg")
    fake_bing.files["ok.jpg"] = Served(encode(picture(1)))

    cleaned = crawl(fake_bing, [MYNA], tmp_path)

    assert cleaned.rejected == [] and len(cleaned.kept) == 1
    assert not answers["first"]


def test_one_pool_downloads_for_every_class_so_a_stall_is_paid_once(fake_bing, tmp_path):
    """Each class has a slow image: the searches of the next classes go on while it downloads, and
    the three slow downloads run side by side, not one class after another."""
    for k, bird in enumerate([MYNA, WARBLER, SUNBIRD]):
        fake_bing.add(bird.keyword, f"slow{k}.jpg", Served(encode(picture(10 * k)), delay_s=1.0))
        fake_bing.add(bird.keyword, f"quick{k}.jpg", Served(encode(picture(10 * k + 1))))

    cleaned = crawl(fake_bing, [MYNA, WARBLER, SUNBIRD], tmp_path, threads=4, timeout_s=5.0)

    assert [k.name for k in cleaned.kept] == [f"{s}/{s}_{i:03d}.jpg" for s in ("myna", "reed_warbler", "sunbird") for i in (0, 1)]
    slow = [t for path, t in fake_bing.arrivals if path.startswith("/img/slow")]
    assert len(slow) == 3 and max(slow) - min(slow) < 1.0  # all three asked for before the first answered
