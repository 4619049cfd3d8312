"""dvc.yaml tells the truth: each stage depends on exactly the code it runs and the params it reads.

Code: the import closure of the stage's module within this project (stages/, birds_onnx/),
computed from the source, must equal the .py files the stage lists as deps (a folder of code
counts as the .py files in it), so that editing any module a stage runs makes `dvc status` report
it, and editing one it does not run does not.
Params: the keys the stage declares in its PARAMS (and nothing else can it read: see
stages/shared/params.py's DeclaredParams) must equal its params in dvc.yaml.
"""

from __future__ import annotations

import ast
import importlib
import re
import typing
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

from helpers.project import ROOT
from stages.shared.params import Crawl, resolve

PACKAGES = ("stages", "birds_onnx")
# Modules a stage imports by name at run time, chosen by a param (dvc.yaml templates the same choice).
IMPORTED_BY_PARAM = {"crawl": lambda params: [f"stages.sources.{params['crawl']['source']}"]}
SOURCES = typing.get_args(Crawl.model_fields["source"].annotation)


def module_file(module: str) -> Path | None:
    base = ROOT / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def has_code(path: Path) -> bool:
    """False for an empty package __init__ or one holding only its docstring."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return bool(body[1:] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body)


def imported_modules(path: Path) -> set[str]:
    """Every project module `path` imports, anywhere in the file (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {m for m in found if m.split(".")[0] in PACKAGES and module_file(m)}


def import_closure(modules: list[str]) -> set[str]:
    """The project files that running `modules` executes: theirs, what they import, recursively,
    and the package __init__ files on the way that hold code."""
    seen, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]))
            if path is None or path in seen:
                continue
            seen.add(path)
            todo += sorted(imported_modules(path))
    return {p.relative_to(ROOT).as_posix() for p in seen if p.name != "__init__.py" or has_code(p)}


def listed_code(stage) -> set[str]:
    """The .py files a stage depends on: its .py deps, and those in its deps that are folders of code."""
    found = set()
    for dep in stage.deps:
        path = str(dep.def_path)
        if hasattr(dep, "params"):
            continue
        if path.endswith(".py"):
            found.add(path)
        elif path.split("/")[0] in PACKAGES:
            found |= {f.relative_to(ROOT).as_posix() for f in (ROOT / path).rglob("*.py")
                      if f.name != "__init__.py" or has_code(f)}
    return found


def stages() -> list:
    with Repo(str(ROOT)) as repo:
        return list(repo.index.stages)


def stage_module(stage) -> str:
    match = re.match(r"python -m (stages\.\w+)\b", stage.cmd)
    assert match, f"{stage.addressing}: command {stage.cmd!r} is not `python -m stages.<name> ...`"
    return match.group(1)


STAGES = stages()
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.addressing)
def test_code_deps_are_the_import_closure(stage):
    module = stage_module(stage)
    runs = [module] + IMPORTED_BY_PARAM.get(stage.name.split("@")[0], lambda p: [])(PARAMS)
    listed = listed_code(stage)
    expected = import_closure(runs)
    assert sorted(expected - listed) == [], f"{stage.addressing} runs these files but does not depend on them"
    assert sorted(listed - expected) == [], f"{stage.addressing} depends on these files but does not run them"


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.addressing)
def test_params_deps_are_the_keys_the_stage_reads(stage):
    module = importlib.import_module(stage_module(stage))
    # a stage that declares nothing must not load params at all (load_params() unrestricted is for tools)
    declared = getattr(module, "PARAMS", ())
    if not declared:
        assert "load_params" not in Path(module.__file__).read_text(encoding="utf-8")
    listed = [key for d in stage.deps if hasattr(d, "params") for key in d.params]
    assert sorted(listed) == sorted(resolve(key, PARAMS) for key in declared)


def test_the_closure_follows_imports_through_packages():
    """The check above is not vacuous: it sees a stage's indirect imports and the runtime package."""
    closure = import_closure(["stages.evaluate"])
    assert {"stages/evaluate.py", "stages/shared/atomic.py", "stages/shared/params.py", "birds_onnx/stream.py", "birds_onnx/errors.py"} <= closure
    assert "stages/train.py" not in closure and "birds_onnx/__init__.py" not in closure


@pytest.mark.parametrize("source", SOURCES)
def test_every_crawl_source_is_a_package_whose_folder_holds_its_code(source):
    """dvc.yaml names the chosen source's code by one template, stages/sources/${crawl.source}: a
    folder for every source (DVC cannot pick a file for one and a folder for another), holding the
    whole import closure of the source within stages/sources/ other than the modules every source shares."""
    folder = ROOT / "stages" / "sources" / source
    assert (folder / "__init__.py").is_file()
    shared = import_closure(["stages.crawl"])
    own = {p for p in import_closure([f"stages.sources.{source}"]) - shared if p.startswith("stages/sources/")}
    assert own == {f.relative_to(ROOT).as_posix() for f in folder.rglob("*.py")}


def test_a_folder_of_code_hashes_its_code_only():
    """DVC hashes every file in a folder dep but those .dvcignore names: Python's bytecode caches
    must be among them, or importing a source's modules (a test, another Python) would re-crawl."""
    with Repo(str(ROOT)) as repo:
        ignored = lambda path: repo.dvcignore.is_ignored(repo.fs, repo.fs.join(repo.root_dir, path))  # noqa: E731
        assert ignored("stages/sources/synthetic/__pycache__/bird.cpython-311.pyc")
        assert ignored("stages/sources/synthetic/__pycache__")
        assert not ignored("stages/sources/synthetic/bird.py")
