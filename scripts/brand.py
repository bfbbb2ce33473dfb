"""Draw Mail Relay's brand images into custom_components/mail_relay/brand/.

The icon is a blue envelope with an orange "relay" badge (a white arrow
leaving the envelope) at its lower right; the logo is the icon beside the words
"Mail Relay". Only the logo has dark-background variants (dark_logo*.png,
with light text); the icon's colours read on light and dark alike. Everything
is drawn at four times the output size and scaled down with LANCZOS, which
anti-aliases the edges.

Run: .venv/bin/python scripts/brand.py
"""

from __future__ import annotations

import sys
from math import ceil
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "custom_components" / "mail_relay" / "brand"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")

SUPERSAMPLE = 4
UNIT = 256  # the icon is designed on a 256 x 256 grid

ENVELOPE = (30, 136, 229, 255)  # Material blue 600
FLAP = (255, 255, 255, 255)
BADGE = (251, 140, 0, 255)  # Material orange 600
ARROW = (255, 255, 255, 255)
CLEAR = (0, 0, 0, 0)
TEXT_LIGHT_BG = (38, 50, 56, 255)  # blue grey 900, for light backgrounds
TEXT_DARK_BG = (236, 239, 241, 255)  # blue grey 50, for dark backgrounds

type RGBA = tuple[int, int, int, int]

# Layout, in units of the 256 grid. The envelope touches the left edge and
# the badge the right one; together they are centred vertically (6 to 250).
ENVELOPE_TOP, ENVELOPE_BOTTOM, ENVELOPE_RIGHT = 6.0, 184.0, 236.0
BADGE_X, BADGE_Y, BADGE_RADIUS = 192.0, 186.0, 64.0
TEXT = "Mail Relay"
TEXT_SIZE = 112.0
TEXT_GAP = 32.0


def load_font(size: int) -> ImageFont.FreeTypeFont:
    if not FONT.is_file():
        sys.exit(
            f"Font {FONT} is missing; install it with: apt-get install -y fonts-dejavu-core"
        )
    return ImageFont.truetype(str(FONT), size)


def render_icon(big: int) -> Image.Image:
    """The icon on a big x big canvas, not yet reduced."""
    k = big / UNIT

    def px(*values: float) -> list[float]:
        return [v * k for v in values]

    image = Image.new("RGBA", (big, big), CLEAR)
    draw = ImageDraw.Draw(image)

    # Envelope body: a rounded rectangle, 4:3, in the upper left.
    top, bottom, right = ENVELOPE_TOP, ENVELOPE_BOTTOM, ENVELOPE_RIGHT
    draw.rounded_rectangle(px(0, top, right, bottom), radius=26 * k, fill=ENVELOPE)

    # Flap: a bold white V from near the top corners to the middle.
    flap_width = 18.0
    left_end = (30.0, top + 28)
    apex = (right / 2, top + 98)
    right_end = (right - 30, top + 28)
    points = [(x * k, y * k) for x, y in (left_end, apex, right_end)]
    draw.line(points, fill=FLAP, width=round(flap_width * k), joint="curve")
    for x, y in (left_end, right_end):
        r = flap_width / 2
        draw.ellipse(px(x - r, y - r, x + r, y + r), fill=FLAP)

    # Relay badge: an orange disc at the lower right, parted from the envelope
    # by a transparent ring so the two shapes stay distinct at small sizes.
    cx, cy, radius, gap = BADGE_X, BADGE_Y, BADGE_RADIUS, 12.0
    ring = radius + gap
    draw.ellipse(px(cx - ring, cy - ring, cx + ring, cy + ring), fill=CLEAR)
    draw.ellipse(px(cx - radius, cy - radius, cx + radius, cy + radius), fill=BADGE)

    # Arrow in the badge, pointing right (out of the envelope).
    shaft = 20.0
    tail, neck, tip = cx - 36, cx + 4, cx + 38
    head = 34.0
    draw.rectangle(px(tail, cy - shaft / 2, neck + 2, cy + shaft / 2), fill=ARROW)
    draw.ellipse(
        px(tail - shaft / 2, cy - shaft / 2, tail + shaft / 2, cy + shaft / 2),
        fill=ARROW,
    )
    draw.polygon(
        [(neck * k, (cy - head) * k), (tip * k, cy * k), (neck * k, (cy + head) * k)],
        fill=ARROW,
    )

    return image


def reduce(image: Image.Image) -> Image.Image:
    size = (image.width // SUPERSAMPLE, image.height // SUPERSAMPLE)
    return image.resize(size, Image.Resampling.LANCZOS)


def draw_icon(size: int) -> Image.Image:
    """The icon at size x size pixels."""
    return reduce(render_icon(size * SUPERSAMPLE))


def render_logo(big: int, text_colour: RGBA) -> Image.Image:
    """The icon and the words on a canvas big pixels high, not yet reduced.

    The canvas reaches past the text's advance; draw_logo trims it.
    """
    k = big / UNIT
    font = load_font(round(TEXT_SIZE * k))
    left = font.getbbox(TEXT)[0]
    x = (UNIT + TEXT_GAP) * k - left
    width = ceil(x + font.getlength(TEXT)) + big // 8
    image = Image.new("RGBA", (width, big), CLEAR)
    image.alpha_composite(render_icon(big))
    # Centre the text's ink, capitals to the tail of the "y", on the icon.
    _, ink_top, _, ink_bottom = font.getbbox(TEXT)
    y = UNIT / 2 * k - (ink_top + ink_bottom) / 2
    ImageDraw.Draw(image).text((x, y), TEXT, font=font, fill=text_colour)
    return image


def logo_width(height: int) -> int:
    """The trimmed logo's width: measured at 256 px high, scaled for others.

    Measuring once keeps every size's width exactly proportional (the @2x
    logo is exactly twice the 1x one), whatever the font's hinting does.
    """
    alpha = reduce(render_logo(UNIT * SUPERSAMPLE, TEXT_LIGHT_BG)).getchannel("A")
    bbox = alpha.getbbox()
    assert bbox is not None
    return bbox[2] * height // UNIT


def draw_logo(height: int, text_colour: RGBA) -> Image.Image:
    """The logo, height pixels high and trimmed to its ink."""
    width = logo_width(height)
    image = reduce(render_logo(height * SUPERSAMPLE, text_colour))
    cut = image.getchannel("A").crop((width, 0, image.width, height)).getextrema()
    if cut[1] > 16:
        sys.exit(f"The logo's text runs past its {width} px width at {height} px")
    return image.crop((0, 0, width, height))


def save(image: Image.Image, name: str) -> None:
    path = OUT / name
    image.save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {image.width}x{image.height}")


def main() -> None:
    load_font(10)  # fail early, before writing anything, if the font is missing
    OUT.mkdir(parents=True, exist_ok=True)
    save(draw_icon(256), "icon.png")
    save(draw_icon(512), "icon@2x.png")
    save(draw_logo(256, TEXT_LIGHT_BG), "logo.png")
    save(draw_logo(512, TEXT_LIGHT_BG), "logo@2x.png")
    save(draw_logo(256, TEXT_DARK_BG), "dark_logo.png")
    save(draw_logo(512, TEXT_DARK_BG), "dark_logo@2x.png")


if __name__ == "__main__":
    main()
