"""What the tests share besides fixtures (those are in tests/conftest.py). Imported as
`from helpers.<module> import ...`: pytest puts tests/ on sys.path (rootdir-relative, the tests
folder holding no __init__.py), in xdist's workers and under mutmut's copy in mutants/ alike.

    project          ROOT, the tiny profile's params, `run` as a user would, throwaway git+DVC projects
    images           pictures and encoded images the tests feed the stages
    nasty_files      bytes that make a decoder warn or fail; NASTY_DECODERS, the decoders that misbehave
    nasty_decoders   those decoders: a Pillow plugin loaded by path into the crawl's workers
    fake_bing        a stand-in for Bing image search on 127.0.0.1
    models           the tiny models, the small stage network and the stage project the fixtures build
    recorded_training  the train stage with each step written down (also run as a torchrun rank)
    ordering         plugin: the worker count, the modules with slow tests first
    mutation         plugin: `make mutate`'s hooks (mutmut), and the builds it caches
"""
