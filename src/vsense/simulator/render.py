"""Snapshots of a simulated sensor: what its camera sees, and the same with what it detects.

`render(scene, now, rng)` draws the scene of the sensor's application type (a car park
with its spots, a truck yard with its docks, counting zones on a square, a doorway with
its barrier line, a crowded hall) as the raw image, then the annotated image: detection
boxes with class and score, the spots, zones or lines as overlays, and the counts. The
spots and zones are the scene's own, so the images agree with the sensor's messages.
Light follows the sensor's local hour. Raw images are JPEG, annotated ones PNG.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from vsense.simulator.scenes import (
    BARRIER_CLASSES,
    CountingZone,
    CrowdZone,
    Scene,
    VcbScene,
    VcwScene,
    VczScene,
    VpmScene,
    VydScene,
    activity,
)

WIDTH, HEIGHT = 640, 360
MAX_DRAWN_PER_ZONE = 120
LABELLED_DETECTIONS = 60  # beyond this many boxes, labels would hide the picture
Box = tuple[int, int, int, int]
Color = tuple[int, int, int]
CAR_COLORS: tuple[Color, ...] = (
    (200, 200, 205),
    (30, 30, 35),
    (150, 20, 25),
    (20, 60, 140),
    (235, 235, 230),
    (90, 95, 100),
    (30, 90, 50),
)
VEHICLE_SIZE = {  # (length, width) in pixels, spot-relative
    "car": (0.8, 0.72),
    "van": (0.88, 0.78),
    "truck": (0.95, 0.85),
    "bus": (0.97, 0.85),
    "motorcycle": (0.45, 0.3),
    "bicycle": (0.4, 0.2),
    "other": (0.6, 0.6),
}
CLASS_COLORS: dict[str, Color] = {
    "person": (255, 200, 0),
    "bicycle": (0, 200, 255),
    "car": (0, 255, 120),
    "van": (120, 255, 0),
    "truck": (255, 120, 0),
    "bus": (255, 80, 160),
    "motorcycle": (180, 120, 255),
    "other": (200, 200, 200),
}


@dataclass
class Detection:
    cls: str
    box: Box
    score: float


@dataclass
class Frame:
    """A scene drawn once: the picture, what a detector finds in it, and the overlays and
    counts of the annotated image."""

    image: Image.Image
    detections: list[Detection] = field(default_factory=list)
    overlays: list[Callable[[ImageDraw.ImageDraw, ImageDraw.ImageDraw], None]] = field(
        default_factory=list
    )
    caption: str = ""


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _shade(color: Color, light: float) -> Color:
    r, g, b = color
    return (int(r * light), int(g * light), int(b * light))


def _light(scene: Scene, now: float) -> float:
    """0.35 at night to 1 at noon, from the sensor's local hour."""
    hour = scene.local_hour(now)
    return 0.35 + 0.65 * max(0.0, math.sin(math.pi * (hour - 6) / 12)) if 6 <= hour <= 18 else 0.35


def _vehicle(draw: ImageDraw.ImageDraw, box: Box, color: Color, light: float) -> None:
    x0, y0, x1, y1 = box
    draw.rounded_rectangle(box, radius=max(2, (x1 - x0) // 6), fill=_shade(color, light))
    inset_x, inset_y = (x1 - x0) // 6, (y1 - y0) // 5
    glass = _shade((60, 80, 100), light)
    draw.rectangle((x0 + inset_x, y0 + inset_y, x1 - inset_x, y0 + 2 * inset_y), fill=glass)


def _person(draw: ImageDraw.ImageDraw, x: int, y: int, height: int, rng: random.Random) -> Box:
    """A person standing at (x, y) (their feet); returns their box."""
    head = max(2, height // 6)
    coat = rng.choice(((40, 60, 120), (120, 30, 30), (50, 50, 50), (200, 170, 90), (30, 100, 60)))
    draw.rounded_rectangle((x - head, y - height + 2 * head, x + head, y), radius=head, fill=coat)
    draw.ellipse((x - head, y - height, x + head, y - height + 2 * head), fill=(225, 190, 160))
    return (x - head - 1, y - height - 1, x + head + 1, y + 1)


def _spot_grid(count: int, top: int, bottom: int) -> list[Box]:
    """Spots in two facing rows with a lane between them."""
    per_row = max(1, math.ceil(count / 2))
    width = (WIDTH - 40) / per_row
    depth = (bottom - top - 50) // 2
    boxes = []
    for index in range(count):
        row, column = divmod(index, per_row)
        x0 = int(20 + column * width)
        y0 = top if row == 0 else bottom - depth
        boxes.append((x0, y0, int(x0 + width), y0 + depth))
    return boxes


def _spots(scene: VpmScene | VydScene, frame: Frame, light: float, rng: random.Random) -> None:
    draw = ImageDraw.Draw(frame.image)
    top = 60 if isinstance(scene, VydScene) else 30
    boxes = _spot_grid(len(scene.spots), top, HEIGHT - 10)
    for spot, (x0, y0, x1, y1) in zip(scene.spots, boxes, strict=True):
        draw.rectangle((x0, y0, x1, y1), outline=_shade((230, 230, 220), light), width=2)
        if not spot.is_active or spot.cls is None:
            continue
        length, breadth = VEHICLE_SIZE.get(spot.cls, VEHICLE_SIZE["other"])
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        half_w, half_h = int((x1 - x0) * breadth / 2), int((y1 - y0) * length / 2)
        box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
        _vehicle(draw, box, rng.choice(CAR_COLORS), light)
        frame.detections.append(Detection(spot.cls, box, rng.uniform(0.72, 0.99)))
    taken = sum(s.is_active and not s.deactivated for s in scene.spots)
    monitored = sum(not s.deactivated for s in scene.spots)
    frame.caption = f"{scene.app_type}  occupied {taken}/{monitored}"

    def overlay(_: ImageDraw.ImageDraw, tint: ImageDraw.ImageDraw) -> None:
        for spot, box in zip(scene.spots, boxes, strict=True):
            if spot.deactivated:
                color: tuple[int, ...] = (128, 128, 128, 110)
            else:
                color = (220, 40, 40, 80) if spot.is_active else (40, 200, 80, 80)
            tint.rectangle(box, fill=color, outline=(*color[:3], 230), width=2)
            label = spot.name + (f" {spot.plate}" if getattr(spot, "plate", None) else "")
            tint.text((box[0] + 3, box[1] + 2), label, fill=(255, 255, 255, 255), font=_font(10))

    frame.overlays.append(overlay)


def _yard_building(frame: Frame, scene: VydScene, light: float) -> None:
    draw = ImageDraw.Draw(frame.image)
    draw.rectangle((0, 0, WIDTH, 50), fill=_shade((150, 140, 130), light))
    for index in range(len(scene.spots)):
        x = 20 + index * (WIDTH - 40) // max(1, math.ceil(len(scene.spots) / 2))
        if x < WIDTH - 30:
            draw.rectangle((x + 4, 18, x + 26, 50), fill=_shade((70, 75, 85), light))


def _people_in(
    frame: Frame, area: Box, count: int, rng: random.Random, classes: dict[str, float]
) -> None:
    draw = ImageDraw.Draw(frame.image)
    x0, y0, x1, y1 = area
    names, weights = list(classes), list(classes.values())
    for _ in range(count):
        cls = rng.choices(names, weights)[0]
        x, y = rng.randint(x0 + 8, max(x0 + 9, x1 - 8)), rng.randint(y0 + 20, max(y0 + 21, y1))
        height = int(18 + 30 * (y - 0) / HEIGHT)  # farther is smaller
        if cls == "person":
            box = _person(draw, x, y, height, rng)
        else:
            length, breadth = VEHICLE_SIZE.get(cls, VEHICLE_SIZE["other"])
            half_w, half_h = int(height * breadth), int(height * length / 2)
            box = (x - half_w, y - 2 * half_h, x + half_w, y)
            _vehicle(draw, box, rng.choice(CAR_COLORS), 1.0)
        frame.detections.append(Detection(cls, box, rng.uniform(0.6, 0.98)))


def _zones(
    scene: VczScene | VcwScene, frame: Frame, now: float, rng: random.Random
) -> list[tuple[str, Box, int]]:
    """The zones side by side, each with as many objects as the sensor would count now."""
    busy = activity(scene.local_hour(now))
    zones: list[CountingZone | CrowdZone] = list(scene.zones)
    width = WIDTH // len(zones)
    drawn = []
    for index, zone in enumerate(zones):
        area = (index * width + 6, 90, (index + 1) * width - 6, HEIGHT - 8)
        if isinstance(zone, CrowdZone):  # VCW; VCZ zones have a capacity and classes
            crowd = sum(c.people(scene.clock.sim(now)) for c in zone.crowds)
            expected, classes = zone.baseline * busy + crowd, {"person": 1.0}
        else:
            expected, classes = zone.capacity * busy, zone.classes
        # A dense crowd is drawn in part; the caption keeps the whole count.
        count = max(0, round(rng.gauss(expected, math.sqrt(max(expected, 1)))))
        _people_in(frame, area, min(count, MAX_DRAWN_PER_ZONE), rng, classes)
        drawn.append((zone.name, area, count))
    return drawn


def _zone_overlay(frame: Frame, drawn: list[tuple[str, Box, int]], areas: dict[str, float]) -> None:
    def overlay(_: ImageDraw.ImageDraw, tint: ImageDraw.ImageDraw) -> None:
        for name, box, count in drawn:
            tint.rectangle(box, fill=(40, 120, 255, 50), outline=(40, 120, 255, 230), width=3)
            area = areas.get(name)
            density = f", {count / area:.2f}/m²" if area else ""
            tint.text(
                (box[0] + 6, box[1] + 4), f"{name}: {count}{density}", fill=(255, 255, 255, 255)
            )

    frame.overlays.append(overlay)
    frame.caption += "  " + "  ".join(f"{name} {count}" for name, _, count in drawn)


def _doorway(scene: VcbScene, frame: Frame, now: float, rng: random.Random, light: float) -> None:
    draw = ImageDraw.Draw(frame.image)
    draw.rectangle((0, 0, WIDTH, 150), fill=_shade((190, 180, 165), light))
    draw.rectangle((250, 30, 390, 150), fill=_shade((60, 45, 35), light))  # the door
    line_y = 215
    busy = activity(scene.local_hour(now))
    count = round(rng.gauss(14 * busy, 2))
    _people_in(frame, (60, 150, WIDTH - 60, HEIGHT - 5), max(0, count), rng, BARRIER_CLASSES)
    inside = {line.name: sum(line.inside.values()) for line in scene.lines}
    frame.caption = f"VCB  {'  '.join(f'{name}: {n} inside' for name, n in inside.items())}"

    def overlay(plain: ImageDraw.ImageDraw, _: ImageDraw.ImageDraw) -> None:
        plain.line((40, line_y, WIDTH - 40, line_y), fill=(255, 60, 60), width=4)
        plain.polygon([(320, line_y - 40), (310, line_y - 22), (330, line_y - 22)], fill="red")
        plain.text((334, line_y - 42), "in", fill=(255, 60, 60), font=_font(14))
        for index, line in enumerate(scene.lines):
            plain.text((44, line_y + 6 + 16 * index), line.name, fill=(255, 60, 60), font=_font(12))

    frame.overlays.append(overlay)


def draw_frame(scene: Scene, now: float, rng: random.Random) -> Frame:
    """The scene as the camera sees it, with what the annotated image adds."""
    light = _light(scene, now)
    ground = (95, 95, 100) if isinstance(scene, VpmScene | VydScene) else (150, 140, 125)
    frame = Frame(Image.new("RGB", (WIDTH, HEIGHT), _shade(ground, light)))
    if isinstance(scene, VydScene):
        _yard_building(frame, scene, light)
    if isinstance(scene, VpmScene | VydScene):
        _spots(scene, frame, light, rng)
    elif isinstance(scene, VczScene | VcwScene):
        ImageDraw.Draw(frame.image).rectangle(
            (0, 0, WIDTH, 80), fill=_shade((120, 150, 190), light)
        )
        areas = {
            zone.name: zone.area_m2
            for zone in scene.zones
            if isinstance(zone, CrowdZone) and zone.area_m2
        }
        frame.caption = scene.app_type
        _zone_overlay(frame, _zones(scene, frame, now, rng), areas)
    elif isinstance(scene, VcbScene):
        _doorway(scene, frame, now, rng, light)
    return frame


def annotate(frame: Frame) -> Image.Image:
    """The raw picture with overlays, detection boxes and the counts."""
    image = frame.image.convert("RGBA")
    tint_layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    plain, tint = ImageDraw.Draw(image), ImageDraw.Draw(tint_layer)
    for overlay in frame.overlays:
        overlay(plain, tint)
    image = Image.alpha_composite(image, tint_layer)
    draw = ImageDraw.Draw(image)
    for detection in frame.detections:
        color = CLASS_COLORS.get(detection.cls, CLASS_COLORS["other"])
        draw.rectangle(detection.box, outline=color, width=2)
        if len(frame.detections) <= LABELLED_DETECTIONS:
            label = f"{detection.cls} {detection.score:.2f}"
            draw.text((detection.box[0], detection.box[1] - 11), label, fill=color, font=_font(9))
    draw.rectangle((0, 0, WIDTH, 18), fill=(0, 0, 0, 200))
    caption = f"{frame.caption}  detections {len(frame.detections)}"
    draw.text((6, 3), caption, fill=(255, 255, 255), font=_font(12))
    return image.convert("RGB")


def render(scene: Scene, now: float, rng: random.Random) -> tuple[bytes, bytes]:
    """(raw JPEG, annotated PNG) of the scene at wall-clock time `now`."""
    frame = draw_frame(scene, now, rng)
    raw, annotated = io.BytesIO(), io.BytesIO()
    frame.image.save(raw, "JPEG", quality=85)
    annotate(frame).save(annotated, "PNG", optimize=False)
    return raw.getvalue(), annotated.getvalue()
