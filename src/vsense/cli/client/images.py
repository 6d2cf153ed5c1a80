"""`vsense image request|list`: snapshots of a device."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated

import typer
from rich.status import Status

from vsense.cli.client import views
from vsense.cli.client.context import Context, command
from vsense.client.models import CapturedImages, Image

image_app = typer.Typer(
    help="Snapshots: ask a device for one, list recent ones.", no_args_is_help=True
)

Uuid = Annotated[str, typer.Argument(help="The device's UUID.")]
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png"}


def _save(image: Image, folder: Path, stem: str) -> Path:
    extension = EXTENSIONS.get(image.content_type) or mimetypes.guess_extension(image.content_type)
    target = folder / f"{stem}{extension or '.bin'}"
    target.write_bytes(image.content)
    return target


@command(image_app, "request")
def request_image(
    cli: Context,
    uuid: Uuid,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the device, then save both images.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for the images (implies --wait; default with --wait: here).",
            file_okay=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the device with --wait.")
    ] = 180.0,
) -> None:
    """Ask a device for a snapshot; with --wait or --out, save both images.

    The answer is two signed links (raw, annotated) that serve the images once the
    device has uploaded them (about 20 s on real hardware).
    """
    client = cli.client()
    request = client.images.request(uuid)
    cli.out.result(request, lambda item: views.image_request(cli.out, item))
    if not (wait or out):
        return
    folder = out or Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    captured: CapturedImages
    message = f"waiting for device {uuid} to take snapshot {request.request_id}"
    if cli.out.stderr.is_terminal:
        with Status(message + " …", console=cli.out.stderr) as status:

            def progress(elapsed: float) -> None:
                status.update(f"{message} … {elapsed:.0f} s")

            captured = client.images.wait(request, timeout=timeout, on_progress=progress)
    else:
        cli.out.note(message + " …")
        captured = client.images.wait(request, timeout=timeout)
    raw = _save(captured.raw, folder, f"{request.request_id}_raw_image")
    annotated = _save(captured.annotated, folder, f"{request.request_id}_annotated_image")
    cli.out.done(f"Saved {raw} ({len(captured.raw.content)} bytes)")
    cli.out.done(f"Saved {annotated} ({len(captured.annotated.content)} bytes)")


@command(image_app, "list")
def list_images(
    cli: Context,
    uuid: Uuid,
    page: Annotated[int | None, typer.Option(min=1, help="Page number.")] = None,
    per_page: Annotated[int | None, typer.Option(min=1, max=500, help="Items per page.")] = None,
) -> None:
    """A device's recent snapshot requests, newest first, with their links while valid."""
    result = cli.client().images.list(uuid, page=page, per_page=per_page)
    cli.out.page(result, lambda items: views.image_requests(cli.out, items), "snapshot requests")


def register(app: typer.Typer) -> None:
    app.add_typer(image_app, name="image")
