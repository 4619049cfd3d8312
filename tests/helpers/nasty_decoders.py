"""Test-only Pillow decoders that misbehave on purpose, loaded into each crawl worker through the
environment variable stages.sources.cleaning.PLUGIN_ENV (never set outside the tests).

A file starting with b"NASTY:<what>" opens as format NASTY and then:
    raise   raises an exception type no Pillow document lists
    quiet   raises an OSError without a message
    sleep   sleeps far past any decode time limit (a hung decoder)
    exit    ends its process at once (os._exit), as a crashing decoder would
    segv    kills its process with SIGSEGV
Real malformed bytes cover the rest (tests/test_nasty.py): an unknown DDS pixel format
(NotImplementedError), a PNG too big for the memory cap, EXIF that makes Pillow warn.
"""

import os
import signal
import time

from PIL import Image, ImageFile


class DecoderConfused(Exception):
    """Not an exception any Pillow plugin documents."""


class NastyImageFile(ImageFile.ImageFile):
    format = "NASTY"
    format_description = "misbehaves on purpose"

    def _open(self):
        what = self.fp.read(32).split(b":", 1)[1].split(b"\n")[0].strip().decode()
        if what == "raise":
            raise DecoderConfused("the decoder lost its way")
        if what == "quiet":
            raise OSError()
        if what == "sleep":
            time.sleep(3600)
        if what == "exit":
            os._exit(3)
        if what == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        raise SyntaxError(f"unknown nastiness {what!r}")


Image.register_open(NastyImageFile.format, NastyImageFile, lambda prefix: prefix.startswith(b"NASTY:"))
