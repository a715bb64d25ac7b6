"""Output hygiene: what reaches the browser is inert HTML, made by one allowlist sanitiser (nh3)."""

from __future__ import annotations

import re
from typing import Any, Mapping

import nh3

# SVG as plotting libraries write it (matplotlib, seaborn, plotly's static export): shapes, text,
# gradients, clip paths, markers. No animation (<animate>/<set> can rewrite an href), no <foreignObject>.
_SVG_TAGS = {
    "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan", "textPath",
    "defs", "use", "symbol", "marker", "pattern", "mask", "clipPath", "linearGradient", "radialGradient", "stop",
    "title", "desc", "image", "switch",
}
_SVG_ATTRS = {
    "xmlns", "xlink", "href", "version", "viewBox", "preserveAspectRatio", "d", "x", "y", "x1", "y1", "x2", "y2",
    "cx", "cy", "r", "rx", "ry", "fx", "fy", "dx", "dy", "points", "transform", "fill", "fill-opacity", "fill-rule",
    "stroke", "stroke-width", "stroke-linecap", "stroke-linejoin", "stroke-dasharray", "stroke-dashoffset",
    "stroke-opacity", "stroke-miterlimit", "opacity", "clip-path", "clip-rule", "clipPathUnits", "mask",
    "font-family", "font-size", "font-weight", "font-style", "text-anchor", "dominant-baseline",
    "alignment-baseline", "baseline-shift", "letter-spacing", "rotate", "textLength", "lengthAdjust",
    "gradientUnits", "gradientTransform", "offset", "stop-color", "stop-opacity", "spreadMethod", "patternUnits",
    "patternContentUnits", "patternTransform", "markerWidth", "markerHeight", "markerUnits", "refX", "refY",
    "orient", "marker-start", "marker-mid", "marker-end", "visibility", "display", "vector-effect",
    "shape-rendering", "text-rendering", "color", "space", "startOffset",
}
# HTML as DataFrames, Stylers and rich reprs write it; tables and formatting.
_HTML_TAGS = {"style", "font", "center", "big", "small", "caption", "colgroup", "col", "tfoot", "section", "main",
              "label", "progress", "meter", "output"}
_HTML_ATTRS = {"id", "class", "style", "title", "lang", "dir", "align", "valign", "width", "height", "border",
               "colspan", "rowspan", "halign", "cellpadding", "cellspacing", "bgcolor", "color", "face", "size",
               "role", "type", "start", "value", "max", "min", "open", "alt", "span", "scope", "headers", "nowrap"}
# Elements removed with everything inside them.
_DROP_WITH_CONTENT = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript", "template",
                      "noembed", "xmp", "plaintext", "foreignObject", "portal"}

_TAGS = set(nh3.ALLOWED_TAGS) | _HTML_TAGS | _SVG_TAGS
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = _ATTRIBUTES.get("*", set()) | _HTML_ATTRS | _SVG_ATTRS
_URL_SCHEMES = set(nh3.ALLOWED_URL_SCHEMES) | {"data"}

_BAD_CSS = re.compile(r"expression\s*\(|javascript:|url\s*\(|behavior\s*:|-moz-binding", re.I)
_BAD_STYLE_SHEET = re.compile(r"expression\s*\(|javascript:|@import|behavior\s*:|-moz-binding", re.I)
_STYLE_ELEMENT = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.I | re.S)
_SAFE_DATA_URL = re.compile(r"^\s*data:image/(png|jpeg|jpg|gif|webp|bmp)[;,]", re.I)


def _attribute_filter(tag: str, name: str, value: str) -> str | None:
    """Drop script-like CSS in style attributes, and data: URLs that are not plain images."""
    if name == "style" and _BAD_CSS.search(value):
        return None
    if value[:12].lstrip().lower().startswith("data:") and not _SAFE_DATA_URL.match(value):
        return None
    return value


def _style_sheet(match: re.Match) -> str:
    return "" if _BAD_STYLE_SHEET.search(match.group(2)) else match.group(0)


def sanitize_html(text: str) -> str:
    """Inert HTML: no scripts, frames, objects, forms, event handlers or javascript: URLs.

    Tables, formatting, images, SVG figures and <style> (without script-like CSS) survive, so
    DataFrames, Styler output and matplotlib's SVG still look right.
    """
    clean = nh3.clean(text, tags=_TAGS, clean_content_tags=_DROP_WITH_CONTENT, attributes=_ATTRIBUTES,
                      attribute_filter=_attribute_filter, url_schemes=_URL_SCHEMES,
                      generic_attribute_prefixes={"data-", "aria-"})
    return _STYLE_ELEMENT.sub(_style_sheet, clean) if "<style" in clean else clean


_ACTIVE_MIME = {"application/javascript", "text/javascript", "application/x-javascript",
                "application/ecmascript", "text/ecmascript"}


def sanitize_bundle(data: Mapping[str, Any]) -> dict[str, Any]:
    """A display mime bundle without active content: JavaScript dropped, HTML/SVG/Markdown made inert."""
    out: dict[str, Any] = {}
    for mime, value in data.items():
        if mime in _ACTIVE_MIME or "javascript" in mime:
            continue
        if mime in ("text/html", "image/svg+xml") and isinstance(value, str):
            value = sanitize_html(value)
        elif mime == "text/markdown" and isinstance(value, str):
            value = re.sub(r"\]\(\s*(javascript|vbscript|data)\s*:[^)]*\)", "](#)", sanitize_html(value), flags=re.I)
        out[mime] = value
    if not out and data:
        out["text/plain"] = "[active content removed by the guard]"
    return out


def sanitize_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """nbformat outputs of an agent action, made inert before they reach the browser."""
    clean = []
    for output in outputs:
        if output.get("output_type") in ("display_data", "execute_result", "update_display_data"):
            output = {**output, "data": sanitize_bundle(output.get("data", {}))}
        clean.append(output)
    return clean
