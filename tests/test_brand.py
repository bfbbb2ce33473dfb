"""The brand images meet Home Assistant's brand rules (scripts/brand.py draws them)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from PIL import Image

BRAND = Path(__file__).parent.parent / "custom_components/mail_relay/brand"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

REQUIRED = ["icon.png", "icon@2x.png", "logo.png", "logo@2x.png"]
# Variants for dark backgrounds; each is optional, but one that exists is checked.
DARK = ["dark_icon.png", "dark_icon@2x.png", "dark_logo.png", "dark_logo@2x.png"]
PRESENT = REQUIRED + [name for name in DARK if (BRAND / name).exists()]
# The sets each size rule applies to: the light images, and a dark one shipped.
ICONS = ["", *(["dark_"] if "dark_icon.png" in PRESENT else [])]
LOGOS = ["", *(["dark_"] if "dark_logo.png" in PRESENT else [])]


def size(name: str) -> tuple[int, int]:
    with Image.open(BRAND / name) as image:
        return image.size


@pytest.mark.parametrize("name", REQUIRED)
def test_required_file_exists(name: str) -> None:
    assert (BRAND / name).is_file(), name


@pytest.mark.parametrize("name", PRESENT)
def test_png_with_transparent_corners(name: str) -> None:
    path = BRAND / name
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.mode == "RGBA"
        alpha = image.getchannel("A")
        width, height = image.size
        corners = [(0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)]
        assert [alpha.getpixel(corner) for corner in corners] == [0, 0, 0, 0]


@pytest.mark.parametrize("prefix", ICONS)
def test_icon_sizes(prefix: str) -> None:
    assert size(f"{prefix}icon.png") == (256, 256)
    assert size(f"{prefix}icon@2x.png") == (512, 512)


@pytest.mark.parametrize("prefix", LOGOS)
def test_logo_sizes(prefix: str) -> None:
    width, height = size(f"{prefix}logo.png")
    assert 128 <= min(width, height) <= 256
    assert width >= height  # landscape
    assert size(f"{prefix}logo@2x.png") == (2 * width, 2 * height)


def test_dark_variants_come_in_pairs() -> None:
    for kind in ("icon", "logo"):
        one, two = (BRAND / f"dark_{kind}.png"), (BRAND / f"dark_{kind}@2x.png")
        assert one.exists() == two.exists(), kind


def test_dark_logo_matches_logo() -> None:
    # The logo's dark text needs a light variant on dark backgrounds.
    assert "dark_logo.png" in PRESENT
    assert size("dark_logo.png") == size("logo.png")


def test_images_ship_with_the_package() -> None:
    project = tomllib.loads((BRAND.parent.parent.parent / "pyproject.toml").read_text())
    package_data = project["tool"]["setuptools"]["package-data"]
    assert "brand/*.png" in package_data["custom_components.mail_relay"]
