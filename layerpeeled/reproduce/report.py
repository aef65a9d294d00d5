"""A self-contained HTML page: every figure embedded, with the exact settings that made it."""
from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

from ..atomic import atomic_write_text

STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
         "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse;font-size:0.85em}"
         "td,th{border:1px solid #ccc;padding:2px 6px}pre{background:#f6f6f6;padding:0.5em;overflow-x:auto}")


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<p><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}"></p>'


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)


def write_report(folder, sections: list[dict], title: str, settings: dict) -> Path:
    """``sections``: dicts with ``title``, ``figures`` (PNG paths), ``text``, optional ``table`` and ``settings``."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by layerpeeled.</p>",
             f"<pre>{html.escape(json.dumps(settings, indent=1, default=str))}</pre>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s['title'])}</h2><p>{html.escape(s.get('text', ''))}</p>")
        parts += [_img(p) for p in s.get("figures", [])]
        parts.append(_table(s.get("table", [])))
        if s.get("settings"):
            parts.append(f"<details><summary>exact settings</summary><pre>{html.escape(json.dumps(s['settings'], indent=1, default=str))}</pre></details>")
    parts.append("</body></html>")
    path = Path(folder) / "report.html"
    atomic_write_text(path, "\n".join(parts))
    return path
