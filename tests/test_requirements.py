"""requirements.txt pins every package the code imports, at requirements.lock's version.

Every top-level module that stages/, birds_onnx/ and tests/ import (anywhere in a file, function-
level imports too) is the standard library's, the project's own (stages, birds_onnx, the tests'
helper modules), or an installed distribution's (importlib.metadata maps the import name to the
distribution: bs4 -> beautifulsoup4, yaml -> PyYAML, PIL -> pillow, sklearn -> scikit-learn),
which requirements.txt or an optional extra (requirements-s3.txt) must pin. So a package the code
starts to use cannot arrive only as another package's dependency, at whatever version that
dependency allows, and disappear when that package stops needing it.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

from helpers.code import imported_modules
from helpers.project import ROOT

CODE = ("stages", "birds_onnx", "tests")
FIRST_PARTY = {"stages", "birds_onnx", "helpers"} | {path.stem for path in (ROOT / "tests").glob("*.py")}
REQUIREMENTS = ["requirements.txt", *sorted(p.name for p in ROOT.glob("requirements-*.txt"))]  # with the optional extras


def normalized(name: str) -> str:
    """A distribution's name as PyPI compares them (PEP 503): PyYAML, pyyaml and py_yaml are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """{distribution: version} of the `name==version` lines of a requirements file (extras dropped)."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        requirement = line.split("#")[0].strip()
        if requirement:
            name, equals, version = requirement.partition("==")
            assert equals, f"{path.name}: {requirement!r} is not pinned with =="
            found[normalized(re.sub(r"\[.*\]", "", name))] = version.strip()
    return found


def third_party() -> dict[str, set[str]]:
    """{top-level module: the files importing it} for every module neither stdlib nor the project's."""
    found: dict[str, set[str]] = {}
    for folder in CODE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in imported_modules(path) - FIRST_PARTY - set(sys.stdlib_module_names):
                found.setdefault(module, set()).add(path.relative_to(ROOT).as_posix())
    return found


def unpinned(modules: dict[str, set[str]], pinned: set[str]) -> list[str]:
    """A line per imported module whose distribution is not pinned (or not installed at all)."""
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, files in sorted(modules.items()):
        names = distributions.get(module)
        if not names:
            missing.append(f"{module} (imported by {', '.join(sorted(files))}): no installed distribution provides it")
        elif not {normalized(n) for n in names} & pinned:
            missing.append(f"{module} (imported by {', '.join(sorted(files))}): pin {' or '.join(sorted(set(names)))}")
    return missing


def test_every_imported_package_is_pinned():
    pinned = {name for file in REQUIREMENTS for name in pins(ROOT / file)}
    missing = unpinned(third_party(), pinned)
    assert not missing, "requirements.txt pins no distribution of:\n" + "\n".join(missing)


def test_the_walk_sees_function_level_imports_and_maps_import_names_to_distributions():
    """The check is not vacuous: it finds the imports that are not at the top of a file, and
    names the distribution to pin, not the module."""
    modules = third_party()
    assert {"torch", "PIL", "yaml", "bs4", "sklearn", "psutil"} <= set(modules)
    assert "stages/tools/roofline.py" in modules["openvino"]  # imported inside a function
    assert not FIRST_PARTY & set(modules) and "json" not in modules
    assert unpinned({"bs4": {"x.py"}, "yaml": {"x.py"}}, set()) == [
        "bs4 (imported by x.py): pin beautifulsoup4", "yaml (imported by x.py): pin PyYAML"]
    assert unpinned({"yaml": {"x.py"}}, {"pyyaml"}) == []


def test_each_pin_is_the_locked_version():
    """requirements.txt names what the code imports; requirements.lock pins the whole tree, and
    `make setup` installs the first under the constraints of the second: they must agree."""
    locked = pins(ROOT / "requirements.lock")
    for file in REQUIREMENTS:
        for name, version in pins(ROOT / file).items():
            assert locked.get(name) == version, f"{file} pins {name}=={version}, requirements.lock {name}=={locked.get(name)}"
