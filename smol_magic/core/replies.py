"""Reading a model's reply: the code that runs (fenced, tagged, bare or structured JSON) and the rest."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

_FENCE = re.compile(r"```[ \t]*(?:python|py|ipython|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)
_CODE_TAG = re.compile(r"<code>(.*?)(?:</code>|\Z)", re.S)


@dataclass
class ParsedReply:
    """A model reply split into the code that runs and the rest."""

    code: str | None  # the first code block, or the whole reply if it is code
    reasoning: str  # the reply without that block (later blocks stay in it, as text)
    skipped: int = 0  # later code blocks, which do not run


def parse_reply(text: str) -> ParsedReply:
    """Find the code in a model reply: ```python fences, <code> tags, or the whole reply if it is code.

    Only the first block runs: a reply may add a block it calls an example, an
    alternative or what not to do, and joining them would run that too. A reply
    that is a single bare word or constant is prose, not code, even though it parses.
    """
    for pattern in (_FENCE, _CODE_TAG):
        matches = [m for m in pattern.finditer(text) if m.group(1).strip()]
        if matches:
            first = matches[0]
            reasoning = (text[:first.start()] + text[first.end():]).strip()
            return ParsedReply(first.group(1).strip("\n"), reasoning, len(matches) - 1)
    stripped = text.strip()
    if stripped:
        try:
            body = ast.parse(stripped).body
        except SyntaxError:
            return ParsedReply(None, stripped)
        trivial = len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, (ast.Name, ast.Constant))
        if body and not trivial:
            return ParsedReply(stripped, "")
    return ParsedReply(None, stripped)


def parse_code(text: str) -> tuple[str | None, str]:
    """(the code that runs or None, the reply without it): see ``parse_reply``."""
    parsed = parse_reply(text)
    return parsed.code, parsed.reasoning


_JSON_FENCE = re.compile(r"\A\s*```(?:json)?[ \t]*\n(.*?)\n?```\s*\Z", re.S | re.I)


def parse_structured_reply(text: str) -> ParsedReply | None:
    """A ``{"thought": ..., "code": ...}`` reply (structured outputs), or None if the reply is not that JSON.

    The code may itself hold a ```python fence (some models add one): only its inside runs.
    """
    fenced = _JSON_FENCE.match(text)
    try:
        data = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        return None
    thought = data.get("thought")
    code = data["code"]
    if "```" in code or "<code>" in code:
        code = parse_reply(code).code or code
    code = code.strip("\n")
    return ParsedReply(code if code.strip() else None, thought.strip() if isinstance(thought, str) else "")


def skipped_note(skipped: int) -> str:
    """What the model is told when its reply held more than one code block."""
    blocks = "1 more code block" if skipped == 1 else f"{skipped} more code blocks"
    return (f"Note: your reply had {blocks} after the first; only the first block ran, the others did not. "
            "Put all the code of a step in one block.")
