"""The documentation tells the truth about the repository: in README.md and docs/*.md every
relative link leads to a file that exists (and its #anchor to a heading of that file), every
`make TARGET` names a target of the Makefile and every `python -m MODULE` a module that can be
imported. The checker itself is tested on a small set of pages with one mistake of each kind."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
from pathlib import Path

import pytest

from helpers.project import ROOT

# Named in the docs ahead of the work that adds them; once it is merged they are checked like any
# other name (and this list can be emptied). Missing, each is an expected failure, not a pass.

CODE = "\x00"  # marks where inline code stood in the prose
FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(?<!`)(`+)((?:[^\n]|\n(?![ \t]*\n))+?)(?<!`)\1(?!`)")
# [text](target) and ![alt](target); a target may not hold spaces or brackets
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>\x00]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
MAKE = re.compile(r"(?<![\w./-])make((?:[ \t]+[^\s`|;&()]+)+)")
# `python -m stages.<name>` names a package's modules: the package is what must exist
PYTHON_M = re.compile(r"(?<![\w/-])(?:[\w./-]*/)?python3?(?:\.\d+)?[ \t]+-m[ \t]+([A-Za-z_][\w.]*?)\.?(?:<[^>\s]*>)?(?![\w.<])")


def pages(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def split_code(text: str) -> tuple[str, str]:
    """(prose, code) of a markdown page: the code is what fenced blocks and `inline code` hold
    (inline code may run over a line break, not over a blank line), the prose the rest, where
    links and headings live, with as many lines as the page."""
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            prose.append("")
        elif fenced:
            code.append(line)
            prose.append("")
        else:
            prose.append(line)
    rest = "\n".join(prose)
    code.extend(m.group(2).replace("\n", " ") for m in INLINE_CODE.finditer(rest))
    # what inline code holds is text, never part of a link: it stays (a heading's anchor holds
    # it) between CODE marks, which no link target can hold, without its brackets (GitHub's
    # anchors drop them too), its line breaks kept
    rest = INLINE_CODE.sub(lambda m: CODE + re.sub(r"[\[\]()]", "", m.group(2)) + CODE, rest)
    return rest, "\n".join(code)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (links and emphasis reduced to their words) in
    lower case, every character but letters, digits, spaces, '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "").replace(CODE, "")
    text = re.sub(r"(?<![\w])_+|_+(?![\w])", "", text)  # _emphasis_, not snake_case
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor, the second of a name with -1, the third with -2, as GitHub numbers them."""
    prose, _ = split_code(page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for line in prose.splitlines():
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    found |= set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", page.read_text(encoding="utf-8")))
    return found


def broken_links(root: Path = ROOT) -> list[str]:
    """'page:line: target (why)' for each relative link that leads nowhere."""
    problems = []
    for page in pages(root):
        prose, _ = split_code(page.read_text(encoding="utf-8"))
        for number, line in enumerate(prose.splitlines(), 1):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:: not ours to check
                    continue
                path, _, anchor = target.partition("#")
                dest = (page.parent / path).resolve() if path else page
                where = f"{page.relative_to(root)}:{number}: {target}"
                if not dest.exists():
                    problems.append(f"{where} (no such file)")
                elif anchor and (dest.is_dir() or dest.suffix != ".md"):
                    problems.append(f"{where} (an anchor into a file that is not a markdown page)")
                elif anchor and anchor not in anchors(dest):
                    problems.append(f"{where} (no heading with that anchor; there are: {', '.join(sorted(anchors(dest)))})")
    return problems


def named(pattern: re.Pattern, root: Path = ROOT) -> dict[str, list[str]]:
    """What `pattern` names in the code of every page (fenced blocks and `inline code`): name ->
    the pages naming it."""
    names: dict[str, list[str]] = {}
    for page in pages(root):
        _, code = split_code(page.read_text(encoding="utf-8"))
        for m in pattern.finditer(code):
            name = m.group(1)
            if pattern is MAKE:  # the first word that is neither an option nor VAR=value
                words = [w.rstrip(":,.;'\"") for w in name.split() if not w.startswith("-") and "=" not in w]
                if not words:
                    continue
                name = words[0]
            names.setdefault(name, []).append(str(page.relative_to(root)))
    return names


def make_targets(makefile: Path) -> set[str]:
    """The Makefile's explicit targets (`name:` rules and .PHONY), not its file targets built from variables."""
    targets = set()
    for line in makefile.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([^\s:#=][^:=]*?)\s*::?(?!=)", line)
        if m:
            targets.update(t for t in m.group(1).split() if "$" not in t and "%" not in t)
    return targets - {".PHONY"} | {
        t for line in makefile.read_text(encoding="utf-8").splitlines() if line.startswith(".PHONY:") for t in line.split()[1:]
    }


def module_exists(name: str, root: Path = ROOT) -> bool:
    """Whether `python -m name` finds a module from the project root, without importing it or its packages."""
    parts = name.split(".")
    spec = importlib.machinery.PathFinder.find_spec(parts[0], [str(root)]) or importlib.util.find_spec(parts[0])
    for i in range(1, len(parts)):
        if spec is None or not spec.submodule_search_locations:
            return False
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), list(spec.submodule_search_locations))
    return spec is not None


def make_targets_missing(root: Path = ROOT) -> dict[str, list[str]]:
    targets = make_targets(root / "Makefile")
    return {name: where for name, where in named(MAKE, root).items() if name not in targets}


def modules_missing(root: Path = ROOT) -> dict[str, list[str]]:
    return {name: where for name, where in named(PYTHON_M, root).items() if not module_exists(name, root)}


# --- the repository's pages


def test_every_relative_link_and_anchor_resolves():
    assert len(pages()) > 1, "no docs/*.md found"
    assert broken_links() == []


def test_every_make_target_named_exists():
    assert "repro" in named(MAKE) and "test" in named(MAKE)  # the checker sees README's two commands
    missing = make_targets_missing()
    assert missing == {}, f"make targets the docs name but the Makefile lacks: {missing}"


def test_every_python_module_named_exists():
    assert "stages.tools.bench" in named(PYTHON_M)
    missing = modules_missing()
    assert missing == {}, f"modules the docs run with python -m that do not exist: {missing}"


def test_readme_is_a_short_read_that_leads_to_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 160, "README.md: keep it a five-minute read; reference material goes to docs/"
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall(split_code(readme)[0]) if t.startswith("docs/")}
    assert linked >= {p.name for p in (ROOT / "docs").glob("*.md")}, "a docs page README.md does not link to"
    # the block another change refreshes from the committed metrics: both markers, once each, in order
    start, end = readme.find("<!-- headline:start -->"), readme.find("<!-- headline:end -->")
    assert 0 <= start < end and readme.count("<!-- headline:start -->") == readme.count("<!-- headline:end -->") == 1


# --- the checker, on pages with one mistake of each kind


@pytest.fixture
def site(tmp_path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "Makefile").write_text(".PHONY: repro test\nrepro: setup\n\tdvc repro\ntest:\n\tpytest\n$(VENV)/.installed: x\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "tool.py").write_text("")
    (tmp_path / "README.md").write_text(
        "# Birds\n\n## What it found: `onnx-int8`, 3.45x!\n\nSee [speed](docs/speed.md#the-rule_of-thumb) and "
        "[found](#what-it-found-onnx-int8-345x).\n\n```bash\nmake repro ARGS=train@20   # then python -m pkg.tool\n```\n"
    )
    (tmp_path / "docs" / "speed.md").write_text(
        "# Speed\n\n## The rule_of thumb\n\n## Notes\n\n## Notes\n\n[back](../README.md) [second](#notes-1) "
        "`make -n test` `.venv/bin/python -m pkg`\n`# not a heading`, nor [a link](`nowhere.md`), and `python -m\n"
        "pkg.tool` over a line break\n\n```\n[not a link](nowhere.md)\n```\n"
    )
    return tmp_path


def test_the_checker_passes_a_correct_site(site):
    assert broken_links(site) == [] and make_targets_missing(site) == {} and modules_missing(site) == {}
    assert set(named(MAKE, site)) == {"repro", "test"} and set(named(PYTHON_M, site)) == {"pkg", "pkg.tool"}
    assert anchors(site / "docs" / "speed.md") == {"speed", "the-rule_of-thumb", "notes", "notes-1"}


def test_the_checker_finds_a_broken_link_a_wrong_anchor_a_missing_target_and_module(site):
    readme = site / "README.md"
    text = readme.read_text()
    readme.write_text(text.replace("docs/speed.md#", "docs/sped.md#"))
    assert [p.split(": ", 1)[1] for p in broken_links(site)] == ["docs/sped.md#the-rule_of-thumb (no such file)"]
    readme.write_text(text.replace("#the-rule_of-thumb", "#the-rule-of-thumb"))
    assert "no heading with that anchor" in broken_links(site)[0]
    readme.write_text(text.replace("#what-it-found-onnx-int8-345x", "#what-it-found"))
    assert broken_links(site)[0].startswith("README.md:5: #what-it-found (no heading")
    readme.write_text(text.replace("make repro", "make reproduce").replace("pkg.tool", "pkg.tools"))
    assert make_targets_missing(site) == {"reproduce": ["README.md"]} and modules_missing(site) == {"pkg.tools": ["README.md"]}


@pytest.mark.parametrize("heading, anchor", [
    ("Quick start", "quick-start"),
    ("The predictor: `birds-predict`, installable without torch", "the-predictor-birds-predict-installable-without-torch"),
    ("Speed, formats & the roofline (2-core AVX2)", "speed-formats--the-roofline-2-core-avx2"),
    ("train.precision and _bf16_", "trainprecision-and-bf16"),
    ("cache_images: in memory or from disk", "cache_images-in-memory-or-from-disk"),
    ("See [the report](metrics/report.md)", "see-the-report"),
    ("`run(path)` and `# a comment`", "runpath-and--a-comment"),
])
def test_anchors_follow_githubs_rules(heading, anchor):
    assert slug(heading) == anchor
