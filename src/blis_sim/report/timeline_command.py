"""``blis timeline FILE.json --html OUT.html``: render a timeline file (``blis run --timeline-out``) as one
self-contained HTML page (report/timeline_html.py, docs/timeline.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import logging_setup
from ..errors import InputError

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 120}


@click.command(
    "timeline", context_settings=_CONTEXT,
    help="Render a timeline file written by blis run --timeline-out as one self-contained HTML page (no network): "
         "per instance the step slices, the queue depth and the KV utilisation over time, zoomable, with the step "
         "args on hover (docs/timeline.md).",
    short_help="Render a --timeline-out file as a self-contained HTML page.",
)
@click.argument("timeline", type=click.Path(path_type=Path), metavar="FILE.json")
@click.option("--html", "html_out", required=True, type=click.Path(path_type=Path), metavar="OUT.html",
              help="The HTML page to write (replaced atomically).")
@click.option("--title", default=None, metavar="TEXT", help="Page title [default: the timeline file's name].")
def timeline_command(timeline: Path, html_out: Path, title: str | None) -> int:
    from .results_file import check_writable, write_text_atomic
    from .timeline_html import load_timeline, render_html

    logging_setup.configure(None)
    if str(html_out).endswith(("/", "\\")):
        raise InputError(f"--html {html_out}: must be a file path, not a directory")
    check_writable(html_out, "--html")  # before reading a large file
    data = load_timeline(timeline)
    page = render_html(data, title if title is not None else timeline.name)
    try:
        write_text_atomic(html_out, page)
    except OSError as exc:
        raise InputError(f"--html {html_out}: cannot write: {exc.strerror or exc}") from None
    steps = sum(len(i["steps"]) for i in data["instances"])
    sys.stdout.write(f"wrote {html_out} ({len(data['instances'])} instance(s), {steps:,} steps, "
                     f"{len(page.encode('utf-8')) / 1024:,.0f} KiB)\n")
    return 0
