"""Self-contained HTML: inline CSS, figures as base64 PNG data URIs, no external asset.

A report page must open from an e-mail attachment or an air-gapped machine, so nothing in it
points outside the file: no ``src="http..."``, no stylesheet link, no script.
"""

from __future__ import annotations

import base64
import html
import io

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.verdict { font-weight: bold; }
.flag-error { color: #b00020; }
.flag-warning { color: #a15c00; }
.muted { color: #777; }
"""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def esc(value: object) -> str:
    """HTML-escape any value's text (quotes included, for attribute values)."""
    return html.escape(str(value), quote=True)


def figure_png(fig, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed (reports draw many)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes; refuses anything that is not a PNG."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not PNG data (bad signature); pass the bytes of a .png file")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img_figure(png: bytes, caption: str) -> str:
    return (
        f'<figure><img alt="{esc(caption)}" src="{png_data_uri(png)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body_parts: list[str]) -> str:
    """A complete HTML document with the inline stylesheet."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(title)}</title>",
            f"<style>{CSS}</style>",
            "</head><body>",
            f"<h1>{esc(title)}</h1>",
            *body_parts,
            "</body></html>",
            "",
        ]
    )
