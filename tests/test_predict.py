"""The predictor: an installable torch-free package, folders and globs, table/csv/jsonl output,
bad files reported one line each, streaming results in input order."""

import csv
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import venv
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest

from birds_onnx.errors import BirdsOnnxError
from birds_onnx.onnx_model import OnnxClassifier
from birds_onnx import predict
from birds_onnx.predict import Progress, Writer, expand_inputs, load_model, main, parse_args, top_classes
from birds_onnx.preprocess import preprocess
from birds_onnx.stream import classify_stream
from helpers.images import photo
from helpers.models import TINY_CLASSES
from helpers.nasty_files import jpeg_with_bad_exif
from helpers.project import ROOT


@pytest.fixture(scope="module")
def device_venv(module_tmp_path):
    """A fresh virtual environment holding a wheel of this package and what it declares it
    needs (pinned to requirements.lock's versions, so pip takes them from its cache), nothing else.
    The wheel is built from a copy of the files the package is made of, so that it cannot use
    anything else of the checkout (and the build leaves nothing in it)."""
    source, wheels, env = module_tmp_path / "source", module_tmp_path / "wheels", module_tmp_path / "venv"
    shutil.copytree(ROOT / "birds_onnx", source / "birds_onnx", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(pip + ["wheel", "--no-deps", "-w", str(wheels), str(source)], check=True, capture_output=True)
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    wheel = next(wheels.glob("*.whl"))
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "--quiet", "install",
                    "-c", str(ROOT / "requirements.lock"), str(wheel)], check=True, capture_output=True)
    return env, wheel


def test_wheel_is_pure_python_and_installs_without_torch(device_venv):
    env, wheel = device_venv
    assert wheel.name.endswith("-py3-none-any.whl")  # nothing x86-specific: an ARM64 board installs it too
    listed = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"birds-onnx", "onnxruntime", "numpy", "pillow"} <= installed
    assert not installed & {"torch", "torchvision", "dvc", "onnx", "scikit-learn", "pyyaml"}


@pytest.mark.parametrize("fmt", ["onnx", "onnx-int8"])
def test_installed_command_classifies_a_folder(tmp_path, device_venv, tiny_models, fmt):
    env, _ = device_venv
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    paths = [photo(photos / "a.jpg", (120, 90), 1), photo(photos / "sub" / "b.png", (90, 120), 2)]
    (photos / "notes.txt").write_text("not an image, and not an image extension: skipped")
    result = subprocess.run(
        [str(env / "bin" / "birds-predict"), str(tiny_models[fmt]), str(photos), "--format", "jsonl", "--top", "2"],
        capture_output=True, text=True, cwd=tmp_path, env={"PATH": os.defpath},
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    classifier = OnnxClassifier(tiny_models[fmt])  # the same answer as the library in this process
    for row, path in zip(rows, paths):
        logits = classifier(preprocess(path, classifier.spec)[None])[0]
        assert row["top"][0]["class"] == TINY_CLASSES[int(logits.argmax())]
        assert [t["probability"] for t in row["top"]] == sorted((t["probability"] for t in row["top"]), reverse=True)


def test_openvino_is_an_optional_extra_and_its_absence_one_line(tmp_path, device_venv, tiny_models):
    """The device's environment has no OpenVINO: `--runtime openvino` says how to get it and
    exits 2. The wheel declares it as the extra `openvino`."""
    env, _ = device_venv
    image = photo(tmp_path / "bird.jpg", (100, 80))
    result = subprocess.run(
        [str(env / "bin" / "birds-predict"), str(tiny_models["onnx"]), str(image), "--runtime", "openvino"],
        capture_output=True, text=True, cwd=tmp_path, env={"PATH": os.defpath},
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "birds-predict: OpenVINO is not installed (No module named 'openvino'): pip install 'birds-onnx[openvino]'\n"
    requires = subprocess.run([str(env / "bin" / "python"), "-c", "import importlib.metadata as m; print(*m.requires('birds-onnx'), sep='\\n')"],
                              capture_output=True, text=True, check=True)
    assert [r for r in requires.stdout.splitlines() if "extra" in r] == ['openvino>=2026.4.1; extra == "openvino"']


def test_installed_command_piped_into_head_ends_quietly(tmp_path, device_venv, tiny_models):
    """`birds-predict MODEL FOLDER | head -2` as a shell runs it: head reads two lines and exits,
    the command's next row meets a closed pipe and it stops with exit status 1 and nothing on
    stderr (no BrokenPipeError traceback, from the loop or from Python's last flush at exit).
    One image at a time, sixty of them: rows go on being written well after head has gone."""
    env, _ = device_venv
    photos = tmp_path / "photos"
    photos.mkdir()
    image = photo(photos / "000.jpg", (80, 80)).read_bytes()
    for i in range(1, 60):
        (photos / f"{i:03}.jpg").write_bytes(image)
    command = [str(env / "bin" / "birds-predict"), str(tiny_models["onnx"]), "photos", "--batch-size", "1", "--workers", "0"]
    predictor = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env={"PATH": os.defpath})
    head = subprocess.Popen(["head", "-2"], stdin=predictor.stdout, stdout=subprocess.PIPE)
    predictor.stdout.close()  # head alone reads it: its exit closes the pipe
    shown = head.communicate(timeout=60)[0].decode().splitlines()
    errors = predictor.communicate(timeout=60)[1].decode()
    assert [line.split()[0] for line in shown] == ["image", "photos/000.jpg"]
    assert (predictor.returncode, errors) == (1, "")  # 1: it met the closed pipe (0 would be a run that finished)


def test_top_classes_are_ranked():
    probabilities = np.array([0.1, 0.6, 0.05, 0.25])
    assert top_classes(probabilities, ["a", "b", "c", "d"], 2) == [("b", 0.6), ("d", 0.25)]
    assert [name for name, _ in top_classes(probabilities, ["a", "b", "c", "d"], 10)] == ["b", "d", "a", "c"]
    # ties keep the model's class order, however many classes (numpy's default sort does not past 16)
    tied = np.array([0.3, 0.2, 0.2, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.3, 0.2, 0.3, 0.2, 0.2, 0.3, 0.2, 0.2])
    names = [f"c{i}" for i in range(len(tied))]
    assert [name for name, _ in top_classes(tied, names, 6)] == ["c0", "c9", "c11", "c14", "c1", "c2"]


def test_inputs_expand_folders_recursively_and_globs(tmp_path, monkeypatch):
    (tmp_path / "d" / "deep").mkdir(parents=True)
    (tmp_path / "d" / ".hidden").mkdir()
    for name in ["d/b.JPG", "d/a.png", "d/deep/c.webp", "d/.hidden/x.jpg", "d/readme.md", "e1.jpg", "e2.jpg", "f.gif"]:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    images, errors = expand_inputs(["d", "e*.jpg", "missing.jpg", "none*.png"])
    assert [p.as_posix() for p in images] == ["d/a.png", "d/b.JPG", "d/deep/c.webp", "e1.jpg", "e2.jpg", "missing.jpg"]
    assert [str(e) for e in errors] == ["none*.png: no file matches this pattern"]
    (tmp_path / "empty").mkdir()
    assert [str(e) for e in expand_inputs(["empty"])[1]] == ["empty: no image files in this folder"]


def test_stream_keeps_input_order_and_puts_errors_in_place(tmp_path, tiny_models):
    classifier = OnnxClassifier(tiny_models["onnx"])
    paths = [photo(tmp_path / f"{i}.jpg", (70 + 9 * i, 80), i) for i in range(7)]
    broken = tmp_path / "broken.jpg"
    broken.write_text("<html>")
    paths.insert(3, broken)
    calls = []

    def counting(batch):
        calls.append(len(batch))
        return classifier(batch)

    results = list(classify_stream(counting, classifier.spec, paths, batch_size=3, workers=2))
    assert [p for p, _ in results] == paths
    assert "not a readable image" in str(results[3][1])
    assert calls == [3, 3, 1]  # batches of readable images only
    one_by_one = [classifier(preprocess(p, classifier.spec)[None])[0] for p in paths if p != broken]
    np.testing.assert_allclose(np.stack([r for p, r in results if p != broken]), np.stack(one_by_one), atol=1e-4)


@pytest.fixture(scope="module")
def folder_to_stream(module_tmp_path, tiny_models) -> tuple[list[Path], dict[Path, np.ndarray]]:
    """Eleven pictures of different sizes, an unreadable file fourth and a missing one ninth; and
    each picture's logits classified alone."""
    folder = module_tmp_path / "stream"
    folder.mkdir()
    pictures = [photo(folder / f"{i:02}.jpg", (66 + 7 * i, 70 + 3 * (i % 4)), seed=i) for i in range(11)]
    (folder / "broken.jpg").write_text("<html>")
    classifier = OnnxClassifier(tiny_models["onnx"], threads=1)
    alone = {p: classifier(preprocess(p, classifier.spec)[None])[0] for p in pictures}
    assert min(np.abs(a - b).max() for a, b in itertools.combinations(alone.values(), 2)) > 1e-3  # each its own
    return pictures[:3] + [folder / "broken.jpg"] + pictures[3:7] + [folder / "missing.jpg"] + pictures[7:], alone


@pytest.mark.parametrize("workers", [0, 1, 2, 16])
@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_a_streamed_folder_gives_the_one_at_a_time_results_in_order_for_any_worker_count(folder_to_stream, tiny_models, workers, batch_size):
    paths, alone = folder_to_stream
    classifier = OnnxClassifier(tiny_models["onnx"], threads=1)
    streamed = list(classify_stream(classifier, classifier.spec, paths, batch_size=batch_size, workers=workers))
    assert [path for path, _ in streamed] == paths
    for path, result in streamed:
        if path in alone:
            np.testing.assert_allclose(result, alone[path], rtol=0, atol=1e-4)
        else:  # the unreadable file and the missing one, each with its error in its place
            assert isinstance(result, BirdsOnnxError) and str(result).startswith(str(path))


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl"])
def test_bad_images_are_one_line_each_and_the_run_goes_on(tmp_path, tiny_models, capsys, fmt):
    good = [photo(tmp_path / "good1.jpg", (100, 80)), photo(tmp_path / "good2.jpg", (80, 100), 1)]
    broken = tmp_path / "broken.jpg"
    broken.write_text("<html>not a picture</html>")
    missing = tmp_path / "missing.jpg"
    args = [str(tiny_models["onnx-int8"]), str(good[0]), str(broken), str(missing), str(good[1]), "--format", fmt, "--top", "5"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"birds-predict: {broken}: not a readable image (cannot identify image file '{broken}')",
        f"birds-predict: {missing}: no such image file",
        "birds-predict: 2 of 4 images could not be read",
    ]
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["path"] for r in rows] == [str(p) for p in good]
        assert list(rows[0]) == ["path", "class_1", "probability_1", "class_2", "probability_2", "class_3", "probability_3"]
        assert abs(sum(float(rows[0][f"probability_{k}"]) for k in (1, 2, 3)) - 1) < 1e-5  # --top capped at 3 classes
    elif fmt == "jsonl":
        assert [json.loads(line)["path"] for line in out.splitlines()] == [str(p) for p in good]
    else:
        header, *rows = out.splitlines()
        assert header.split() == ["image", "top", "1", "top", "2", "top", "3"]
        assert [r.split()[0] for r in rows] == [str(p) for p in good] and all(len(r.split()) == 7 for r in rows)


def test_progress_shows_only_when_asked_or_on_a_terminal(tmp_path, tiny_models, capsys):
    paths = [str(photo(tmp_path / f"{i}.jpg", (80, 80), i)) for i in range(3)]
    assert main([str(tiny_models["onnx"]), *paths, "--format", "csv"]) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal here
    assert main([str(tiny_models["onnx"]), *paths, "--format", "csv", "--progress"]) == 0
    assert "3/3 images" in capsys.readouterr().err
    stream = io.StringIO()
    progress = Progress(2, enabled=True, stream=stream)
    progress.advance()
    progress.say("birds-predict: x.jpg: broken")
    assert "birds-predict: x.jpg: broken\n" in stream.getvalue()


def test_one_at_a_time_mode_gives_the_same_answers(tmp_path, tiny_models, capsys):
    paths = [str(photo(tmp_path / f"{i}.jpg", (90, 70 + 5 * i), i)) for i in range(5)]
    assert main([str(tiny_models["onnx"]), *paths, "--format", "jsonl"]) == 0
    streamed = capsys.readouterr().out
    assert main([str(tiny_models["onnx"]), *paths, "--format", "jsonl", "--batch-size", "1", "--workers", "0"]) == 0
    single = capsys.readouterr().out
    assert [json.loads(line)["top"][0]["class"] for line in streamed.splitlines()] == [
        json.loads(line)["top"][0]["class"] for line in single.splitlines()
    ]


def test_bad_model_or_no_input_is_one_line_and_exit_2(tmp_path, tiny_models, capsys):
    image = photo(tmp_path / "bird.jpg", (100, 80))
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x00not a model")
    assert main([str(broken), str(image)]) == 2
    assert main([str(tmp_path / "none.onnx"), str(image)]) == 2
    foreign = tmp_path / "foreign.onnx"  # a valid model that the export stage did not write
    proto = onnx.load(str(tiny_models["onnx"]))
    del proto.metadata_props[:]
    onnx.save(proto, str(foreign))
    assert main([str(foreign), str(image)]) == 2
    assert main([str(tiny_models["onnx"]), str(tmp_path / "*.png")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 5 and all(line.startswith("birds-predict: ") for line in lines)
    assert "ONNX Runtime cannot load it" in lines[0]
    assert "no such model file" in lines[1]
    assert "class names or preprocessing missing from its metadata" in lines[2]
    assert lines[3:] == [f"birds-predict: {tmp_path}/*.png: no file matches this pattern", "birds-predict: nothing to classify"]


@pytest.mark.parametrize("fmt, expected", [
    ("table", "image      top 1          top 2\n"
              "a.jpg      myna 0.712     crow 0.200\n"
              "b/c.jpg    gull 0.500     crow 0.250\n"),
    ("csv", "path,class_1,probability_1,class_2,probability_2\n"
            "a.jpg,myna,0.712346,crow,0.200000\nb/c.jpg,gull,0.500000,crow,0.250000\n"),
    ("jsonl", '{"path": "a.jpg", "top": [{"class": "myna", "probability": 0.712346}, {"class": "crow", "probability": 0.2}]}\n'
              '{"path": "b/c.jpg", "top": [{"class": "gull", "probability": 0.5}, {"class": "crow", "probability": 0.25}]}\n'
              '{"path": "鳥/ハッカ.jpg", "top": [{"class": "myna", "probability": 1.0}, {"class": "crow", "probability": 0.0}]}\n'),
])
def test_each_output_format_is_exactly_this(fmt, expected):
    out = io.StringIO()
    writer = Writer(fmt, out, top=2, path_width=9, name_width=6)  # columns: the longest path and class name
    writer.write(Path("a.jpg"), [("myna", 0.71234567), ("crow", 0.2)])
    writer.write(Path("b/c.jpg"), [("gull", 0.5), ("crow", 0.25)])
    if fmt == "jsonl":  # names as they are, not \u escapes
        writer.write(Path("鳥/ハッカ.jpg"), [("myna", 1.0), ("crow", 0.0)])
    assert out.getvalue() == expected


def test_options_have_their_documented_defaults_and_reject_bad_numbers(capsys):
    args = parse_args(["m.onnx", "a.jpg"])
    assert (args.top, args.format, args.batch_size, args.runtime, args.progress) == (3, "table", 8, "onnxruntime", None)
    assert args.provider == ["auto"]
    assert args.workers == args.threads == (os.cpu_count() or 1)
    assert parse_args(["m.onnx", "a.jpg", "--workers", "0", "--top", "1"]).workers == 0
    for option, value, said in [("--top", "0", "must be at least 1, got '0'"), ("--batch-size", "-2", "must be a whole number, got '-2'"),
                                ("--workers", "two", "must be a whole number, got 'two'"), ("--threads", "0", "must be at least 1, got '0'")]:
        with pytest.raises(SystemExit) as exit_status:
            parse_args(["m.onnx", "a.jpg", option, value])
        assert exit_status.value.code == 2
        assert f"argument {option}: {said}" in capsys.readouterr().err


def test_progress_redraws_a_few_times_a_second_and_always_at_the_end(monkeypatch):
    now = itertools.chain([0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 10.0, 10.5], itertools.repeat(11.0))
    monkeypatch.setattr(predict.time, "perf_counter", lambda: next(now))
    stream = io.StringIO()
    progress = Progress(5, enabled=True, stream=stream)  # started at 0.0
    for _ in range(5):
        progress.advance()  # 0.1, 0.2 (not over 0.2 s yet), 0.25 (shown), 0.3, 0.35 (the last: shown)
    progress.close()
    assert stream.getvalue() == "\r3/5 images, 12.0 img/s\r5/5 images, 14.3 img/s\n"
    later = io.StringIO()
    progress = Progress(1, enabled=True, stream=later)  # started at 10.0
    progress.advance()
    assert later.getvalue() == "\r1/1 images, 2.0 img/s"
    quiet = io.StringIO()
    Progress(1, enabled=False, stream=quiet).say("birds-predict: x.jpg: broken")
    assert quiet.getvalue() == "birds-predict: x.jpg: broken\n"  # no terminal codes in a file
    loud = io.StringIO()
    Progress(1, enabled=True, stream=loud).say("birds-predict: x.jpg: broken")
    assert loud.getvalue() == "\r\033[Kbirds-predict: x.jpg: broken\n"

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert Progress(1, stream=Terminal()).enabled and not Progress(1, stream=io.StringIO()).enabled
    assert not Progress(1, enabled=False, stream=Terminal()).enabled


def test_a_hidden_folder_given_by_name_is_searched_and_a_file_named_like_a_pattern_is_a_file(tmp_path, monkeypatch):
    (tmp_path / ".photos" / "2024").mkdir(parents=True)
    for name in [".photos/a.jpg", ".photos/2024/b.png", "odd[1].jpg", "x/deep/c.jpg", "x/deep/er/d.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "x/deep/folder.jpg").mkdir()
    monkeypatch.chdir(tmp_path)
    images, errors = expand_inputs([".photos", "odd[1].jpg", "x/**/*.jpg"])
    assert [p.as_posix() for p in images] == [".photos/2024/b.png", ".photos/a.jpg", "odd[1].jpg", "x/deep/c.jpg", "x/deep/er/d.jpg"]
    assert errors == []


def test_inputs_naming_no_image_make_the_exit_status_1_and_are_counted(tmp_path, tiny_models, capsys):
    image = photo(tmp_path / "bird.jpg", (100, 80))
    assert main([str(tiny_models["onnx"]), str(image), str(tmp_path / "*.png"), "--format", "csv"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[1].startswith(f"{image},")
    assert err.splitlines() == [f"birds-predict: {tmp_path}/*.png: no file matches this pattern",
                                "birds-predict: 0 of 1 images could not be read, 1 inputs named no image"]
    assert main([str(tiny_models["onnx"]), str(image)]) == 0


def test_pillow_warnings_do_not_reach_the_terminal(tmp_path, tiny_models, capsys):
    """A photo with odd EXIF is classified without Pillow's warning in the output."""
    image = tmp_path / "odd_exif.jpg"
    image.write_bytes(jpeg_with_bad_exif())
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")  # what a user's terminal would show; main() must override it for Pillow
        assert main([str(tiny_models["onnx"]), str(image), "--format", "csv"]) == 0
    assert [str(w.message) for w in shown] == []
    assert capsys.readouterr().err == ""


def test_only_pillows_warnings_are_silenced(tmp_path, tiny_models, monkeypatch):
    real = predict.top_classes

    def warning_top_classes(*args):
        warnings.warn("a warning of another library")
        return real(*args)

    monkeypatch.setattr(predict, "top_classes", warning_top_classes)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert main([str(tiny_models["onnx"]), str(photo(tmp_path / "a.jpg", (80, 70))), "--format", "csv"]) == 0
    assert [str(w.message) for w in shown] == ["a warning of another library"]


def test_batch_size_workers_and_top_reach_the_model_the_decoders_and_the_output(tmp_path, tiny_models, capsys, monkeypatch):
    paths = [str(photo(tmp_path / f"{i}.jpg", (80 + i, 70), seed=i)) for i in range(5)]
    batches, pools = [], []
    real = predict.load_model

    class Watched:
        """The classifier, the sizes of the batches it is given watched."""

        def __init__(self, classifier):
            self.classifier, self.classes, self.spec = classifier, classifier.classes, classifier.spec

        def __call__(self, batch):
            batches.append(len(batch))
            return self.classifier(batch)

    class WatchedPool(ThreadPoolExecutor):
        def __init__(self, workers, **kwargs):
            pools.append(workers)
            super().__init__(workers, **kwargs)

    monkeypatch.setattr(predict, "load_model", lambda *args: Watched(real(*args)))
    monkeypatch.setattr("birds_onnx.stream.ThreadPoolExecutor", WatchedPool)
    assert main([str(tiny_models["onnx"]), *paths, "--batch-size", "2", "--workers", "3", "--top", "2", "--format", "jsonl"]) == 0
    assert batches == [2, 2, 1]
    assert pools == [3]  # decoding threads
    assert [len(json.loads(line)["top"]) for line in capsys.readouterr().out.splitlines()] == [2] * 5


def test_the_predictor_gives_each_runtime_the_threads_asked(tiny_models):  # OpenVINO: installed with the project's requirements
    openvino = load_model("openvino", str(tiny_models["onnx"]), threads=1)
    assert openvino.request.get_compiled_model().get_property("INFERENCE_NUM_THREADS") == 1
    onnx_runtime = load_model("onnx", str(tiny_models["onnx"]), threads=1)
    assert onnx_runtime.session.get_session_options().intra_op_num_threads == 1


def test_without_a_known_cpu_count_one_thread_decodes_and_one_infers(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    args = parse_args(["m.onnx", "a.jpg"])
    assert (args.workers, args.threads) == (1, 1)


def test_help_describes_the_command_and_every_option(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no help text cut over two lines
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: birds-predict [-h] [--top TOP] [--format {table,csv,jsonl}]")
    assert predict.__doc__.strip().splitlines()[2] in out.splitlines()  # the usage example, as written
    text = " ".join(out.split())
    for option in [
        "model an .onnx file written by the pipeline's export stage",
        "inputs image files, folders (recursive) or glob patterns ('photos/**/*.jpg')",
        "--top TOP how many classes to show per image (default 3)",
        "--format {table,csv,jsonl} table (default), csv or jsonl",
        "--batch-size BATCH_SIZE images per inference call (default 8)",
        "--workers WORKERS decoder threads running ahead of inference; 0 decodes in line (default: CPU count)",
        "--threads THREADS inference threads (default: CPU count)",
        "--runtime {onnxruntime,openvino,auto} onnxruntime (default), openvino (optional extra: pip install 'birds-onnx[openvino]'), "
        "or auto: the format the pipeline's report recommends for this machine (metrics/deploy.json)",
        "--provider NAME[,NAME...] ONNX Runtime's execution providers in order, by name (CUDAExecutionProvider) or short name "
        "(cuda); auto (default): the first accelerator this onnxruntime has; the CPU's is always added last",
        "--progress, --no-progress progress on stderr (default: only when stderr is a terminal)",
    ]:
        assert f" {option} " in f"{text} "
    with pytest.raises(SystemExit):
        parse_args(["m.onnx", "a.jpg", "--format", "xml"])
    assert "argument --format: invalid choice: 'xml'" in capsys.readouterr().err
