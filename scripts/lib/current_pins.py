"""Rewrite the current leg's pins in pyproject.toml to the newest release.

Run inside the testing root (scripts/lock current --newest): pip there sees the
releases that install on its Python 3.14. The newest
pytest-homeassistant-custom-component names the Home Assistant it tests with;
that release's wheel names its frontend and the requirements of the base
components a real ``hass --skip-pip`` imports when it loads action
descriptions (the browser test and scripts/develop run one).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PHCC = "pytest-homeassistant-custom-component"
# Base components whose requirements a real hass needs (docs/testing.md).
COMPONENTS = (
    "conversation",
    "camera",
    "tts",
    "ffmpeg",
    "assist_pipeline",
    "infrared",
    "radio_frequency",
)
BEGIN = "    # -- pins written by scripts/lock --\n"
END = "    # -- end of pins --\n"


def pip(*args: str) -> str:
    """Run this interpreter's pip and return what it printed."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def wheel(name: str, version: str, folder: Path) -> zipfile.ZipFile:
    """Download one wheel, without its dependencies, and open it."""
    pip(
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(folder),
        f"{name}=={version}",
    )
    stem = name.replace("-", "_").lower()
    (path,) = [p for p in folder.glob("*.whl") if p.name.lower().startswith(stem)]
    return zipfile.ZipFile(path)


def main() -> None:
    """Find the newest pins and write them between the markers."""
    pyproject = Path(sys.argv[1])
    found = re.search(rf"{PHCC} \(([^)]+)\)", pip("index", "versions", PHCC))
    if found is None:
        sys.exit(f"pip index versions {PHCC} gave no version")
    phcc = found.group(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with wheel(PHCC, phcc, folder) as archive:
            metadata = next(n for n in archive.namelist() if n.endswith("METADATA"))
            requires = archive.read(metadata).decode()
        ha = re.search(r"^Requires-Dist: homeassistant\s*==\s*(\S+)", requires, re.M)
        if ha is None:
            sys.exit(f"{PHCC} {phcc} pins no homeassistant release")
        pins = [f"{PHCC}=={phcc}", f"homeassistant=={ha.group(1)}"]
        with wheel("homeassistant", ha.group(1), folder) as archive:
            constraints = archive.read("homeassistant/package_constraints.txt").decode()
            pins += re.findall(r"^home-assistant-frontend==\S+", constraints, re.M)
            for component in COMPONENTS:
                manifest = f"homeassistant/components/{component}/manifest.json"
                pins += json.loads(archive.read(manifest)).get("requirements", [])
    text = pyproject.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    block = "".join(f'    "{pin}",\n' for pin in dict.fromkeys(pins))
    pyproject.write_text(head + BEGIN + block + END + tail)
    print("\n".join(pins))


if __name__ == "__main__":
    main()
