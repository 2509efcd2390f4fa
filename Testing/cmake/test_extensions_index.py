"""What the Slicer Extensions Index checks before it accepts an extension, checked here offline.

Read from the index's own CI (github.com/Slicer/ExtensionsIndex, ``scripts/check_description_files.py``
and ``.github/workflows/extension-validation.yml`` at commit 07f1d1b): the description file's name
equals the top-level ``project()`` name and does not start with "Slicer"; the category is one of the
index's accepted categories; the top-level CMakeLists.txt sets ``EXTENSION_ICONURL`` and
``EXTENSION_SCREENSHOTURLS`` as quoted strings pointing at PNG/JPEG/GIF images; a license file sits at
the repository root; the checked-out repository is under 100 MB. Slicer's own conventions add:
contributors as "Name (Organization)" and a homepage that documents the extension. The index's
network checks (the URLs answer with an image, the GitHub topic ``3d-slicer-extension``, a repository
name starting with "Slicer") cannot run offline; the files the URLs name are checked instead.
"""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CMAKE = REPO / "CMakeLists.txt"
MODULE_FILE = REPO / "SaliencyTrust" / "SaliencyTrust.py"

#: Categories the index accepted at commit 07f1d1b (a few of its list; ours must be among them).
INDEX_ACCEPTED_CATEGORIES = {"Analysis", "Informatics", "Quantification", "Segmentation", "Utilities",
                             "Examples", "Filtering", "Registration"}
#: Root file names the index looks for as a license.
INDEX_LICENSE_NAMES = ("LICENSE", "LICENCE", "License.txt", "license.txt", "LICENSE.txt", "COPYING", "COPYING.txt")
#: The index's repository size limit, bytes.
INDEX_SIZE_LIMIT = 100 * 1024 * 1024


def cmake_set(name: str) -> str:
    """The quoted value of ``set(NAME "...")`` in the top-level CMakeLists.txt, read the way the
    index reads it: one ``set`` call, the value in double quotes."""
    found = re.findall(rf'set\s*\(\s*{name}\s+"([^"]*)"\s*\)', CMAKE.read_text(), re.IGNORECASE)
    assert len(found) == 1, f"{name} must be set exactly once as a quoted string in {CMAKE}"
    return found[0]


def module_constant(name: str):
    """A module-level constant of SaliencyTrust.py (read without importing Slicer)."""
    for node in ast.parse(MODULE_FILE.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {MODULE_FILE}")


def github_anchors(markdown: str) -> set:
    """The anchors GitHub gives a Markdown file's headings: lower case, characters other than
    letters, digits, spaces, hyphens and underscores dropped, spaces made hyphens; a repeated
    heading gets ``-1``, ``-2`` ..."""
    anchors, seen = set(), {}
    in_code = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        match = None if in_code else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))  # a link's text only
        text = text.replace("`", "").strip().lower()
        slug = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN").replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_github_anchors_follow_githubs_rule():
    text = "# The 3D Slicer module\n## Tests (`python -m pytest`: 23 tests)\n```\n# not a heading\n```\n## Installing\n## Installing\n"
    assert github_anchors(text) == {"the-3d-slicer-module", "tests-python--m-pytest-23-tests", "installing",
                                    "installing-1"}


def test_extension_name_is_the_project_name_without_slicer_prefix():
    names = re.findall(r"project\s*\(\s*([^\s)]+)", CMAKE.read_text(), re.IGNORECASE)
    assert names and names[0] == "SaliencyTrust"
    assert not names[0].lower().startswith("slicer")


def test_category_is_one_the_index_accepts_and_the_module_uses_it():
    category = cmake_set("EXTENSION_CATEGORY")
    assert category in INDEX_ACCEPTED_CATEGORIES
    assert module_constant("MODULE_CATEGORY") == category


def test_icon_and_screenshot_urls_name_images_in_this_repository():
    urls = [cmake_set("EXTENSION_ICONURL")] + cmake_set("EXTENSION_SCREENSHOTURLS").split()
    for url in urls:
        match = re.fullmatch(r"https://raw\.githubusercontent\.com/([^/]+)/([^/]+)/main/(.+)", url)
        assert match, f"{url} is not a raw.githubusercontent.com URL on the main branch"
        path = REPO / match.group(3)
        assert path.is_file(), f"{url} names {path}, which does not exist"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG image"


def test_license_file_at_the_root_is_the_projects_apache_license():
    present = [name for name in INDEX_LICENSE_NAMES if (REPO / name).is_file()]
    assert present == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
    # The bundle ships the same license text under its own copyright line.
    assert text.strip() in (REPO / "MonaiBundle" / "LICENSE").read_text()


def test_contributors_are_name_and_organization():
    contributors = [c.strip() for c in cmake_set("EXTENSION_CONTRIBUTORS").split(",")]
    for contributor in contributors:
        assert re.fullmatch(r"[^(),]+ \([^(),]+\)", contributor), f"{contributor!r} is not 'Name (Organization)'"
    assert list(module_constant("CONTRIBUTORS")) == contributors


def test_homepage_anchor_exists_in_the_page_it_names():
    homepage = cmake_set("EXTENSION_HOMEPAGE")
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)/blob/main/([^#]+)#(.+)", homepage)
    assert match, f"{homepage} is not a https://github.com/<owner>/<repo>/blob/main/<file>#<anchor> URL"
    page = REPO / match.group(3)
    assert page.is_file(), f"the homepage names {page}, which does not exist"
    anchors = github_anchors(page.read_text())
    assert match.group(4) in anchors, f"#{match.group(4)} is not a heading of {page}: {sorted(anchors)}"
    assert module_constant("HOMEPAGE_URL") == homepage  # the module's help links to the same place
    # Icons, screenshots and the homepage all name the same repository.
    owner_repo = match.group(1, 2)
    for url in [cmake_set("EXTENSION_ICONURL")] + cmake_set("EXTENSION_SCREENSHOTURLS").split():
        assert tuple(url.split("/")[3:5]) == owner_repo


def test_repository_is_under_the_index_size_limit():
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.fail("git is needed to list the repository's files")
    files = [REPO / name for name in listed.decode().split("\0") if name]
    total = sum(path.stat().st_size for path in files if path.is_file())
    assert total < INDEX_SIZE_LIMIT, f"{total / 2**20:.1f} MB of tracked files; the index allows 100 MB"


def test_extension_depends_on_pytorch_as_the_index_description_will_say():
    assert cmake_set("EXTENSION_DEPENDS").split() == ["PyTorch"]
