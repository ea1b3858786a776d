"""Reading a translation request: typed fields, the served direction, the search, the limits.

Every problem is an `ApiError`, which the app answers as JSON `{"error": ..., "limit": ...}`
with its status: 400 for a wrong field, 403 for a wrong API key, 413 for a limit exceeded.
Nothing here knows HTTP beyond those numbers.
"""

from __future__ import annotations

import dataclasses
import hmac
from dataclasses import dataclass
from typing import Any

from transformer.config import DecodeConfig
from transformer.decoding.sampling import Sampling
from transformer.serve.models import ServedModel


class ApiError(Exception):
    """A request the server refuses: its HTTP status, a one-line reason, and the limit named."""

    def __init__(self, status: int, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.limit = limit

    def body(self) -> dict:
        return {"error": self.message} | ({"limit": self.limit} if self.limit else {})


@dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes:
        max_chars: characters of all its text together.
        max_sentences: sentences (lines) of all its text together.
        max_pieces: source pieces of one sentence (None: each model's positional table).
        max_alternatives: n-best hypotheses per sentence.
        max_beam: beam size.
    """

    max_chars: int = 5000
    max_sentences: int = 128
    max_pieces: int | None = None
    max_alternatives: int = 8
    max_beam: int = 16


def check_key(fields: dict, api_key: str | None) -> None:
    """Refuse a missing or wrong `api_key` when the server has one (LibreTranslate: 403)."""
    if api_key is None:
        return
    given = fields.get("api_key")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), api_key.encode()):
        raise ApiError(403, "Invalid API key: give the server's key as the api_key field.")


def text_field(fields: dict, name: str, required: bool = True) -> str | None:
    value = fields.get(name)
    if value is None and not required:
        return None
    if value is None:  # LibreTranslate's words
        raise ApiError(400, f"Invalid request: missing {name} parameter.")
    if not isinstance(value, str):
        raise ApiError(400, f"Invalid request: {name} must be a string (a {type(value).__name__}).")
    return value


def number_field(fields: dict, name: str, kind: type, default: Any = None) -> Any:
    """An int or float field; form fields arrive as strings and are converted."""
    value = fields.get(name, default)
    if value is None or (isinstance(value, kind | int) and not isinstance(value, bool)):
        return kind(value) if value is not None else None
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    raise ApiError(
        400,
        f"Invalid request: {name} must be {'an integer' if kind is int else 'a number'}"
        f" (got {value!r}).",
    )


def bool_field(fields: dict, name: str) -> bool:
    value = fields.get(name, False)
    if isinstance(value, str):  # form fields
        value = {"true": True, "1": True, "false": False, "0": False, "": False}.get(
            value.lower(), value
        )
    if not isinstance(value, bool):
        raise ApiError(400, f"Invalid request: {name} must be true or false (got {value!r}).")
    return value


def texts(fields: dict, name: str) -> list[str]:
    """A field holding one string or a list of strings."""
    value = fields.get(name)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    if value is None or value == []:  # LibreTranslate's words
        raise ApiError(400, f"Invalid request: missing {name} parameter.")
    raise ApiError(400, f"Invalid request: {name} must be a string or a list of strings.")


def pick_model(models: dict[str, ServedModel], source: str, target: str) -> ServedModel:
    """The model of source-target; "auto" stands for the one source served, if only one is."""
    if source == "auto":
        sources = sorted({m.source for m in models.values()})
        if len(sources) > 1:
            raise ApiError(
                400,
                f'source "auto" needs a single served source language; this server serves '
                f"{', '.join(sources)}: name one.",
            )
        source = sources[0]
    model = models.get(f"{source}-{target}")
    if model is None:
        raise ApiError(
            400,
            f"{source}-{target} is not served; this server translates {', '.join(sorted(models))}.",
        )
    return model


def check_size(lines: list[str], model: ServedModel, limits: Limits) -> list[int]:
    """Refuse text over the limits (413, naming the limit); the source pieces per line."""
    chars = sum(len(line) for line in lines)
    if chars > limits.max_chars:
        raise ApiError(
            413, f"{chars} characters exceed max_chars={limits.max_chars} per request.", "max_chars"
        )
    if len(lines) > limits.max_sentences:
        raise ApiError(
            413,
            f"{len(lines)} sentences (lines) exceed max_sentences={limits.max_sentences} per "
            "request.",
            "max_sentences",
        )
    pieces = model.pieces(lines)
    cap = min(limits.max_pieces or model.max_pieces, model.max_pieces)
    for number, count in enumerate(pieces, 1):
        if count > cap:
            raise ApiError(
                413,
                f"sentence {number} has {count} pieces; max_pieces={cap} per sentence.",
                "max_pieces",
            )
    return pieces


def search(fields: dict, model: ServedModel, limits: Limits, n_best: int = 1) -> DecodeConfig:
    """The model's decode config with the request's settings (beam widened to hold n_best)."""
    stored = model.decode
    beam = number_field(fields, "beam_size", int)
    if beam is not None and beam > limits.max_beam:
        raise ApiError(413, f"beam_size {beam} exceeds max_beam={limits.max_beam}.", "max_beam")
    if n_best > limits.max_alternatives:
        raise ApiError(
            413,
            f"{n_best} hypotheses exceed max_alternatives={limits.max_alternatives}.",
            "max_alternatives",
        )
    given = {
        "beam_size": beam if beam is not None else max(stored.beam_size, n_best),
        "n_best": n_best,
        "length_penalty": number_field(fields, "length_penalty", float, stored.length_penalty),
        "max_len_a": number_field(fields, "max_len_a", float, stored.max_len_a),
        "max_len_b": number_field(fields, "max_len_b", int, stored.max_len_b),
    }
    try:
        return dataclasses.replace(stored, **given)
    except ValueError as error:
        raise ApiError(400, str(error).replace("decode.", "")) from None


def sampling(fields: dict) -> Sampling | None:
    """Sampling settings when `sample` is true (a seed makes the draw repeatable)."""
    if not bool_field(fields, "sample"):
        return None
    try:
        return Sampling(
            top_k=number_field(fields, "top_k", int, 0),
            top_p=number_field(fields, "top_p", float, 1.0),
            temperature=number_field(fields, "temperature", float, 1.0),
            seed=number_field(fields, "seed", int, 0),
        )
    except ValueError as error:
        raise ApiError(400, str(error).replace("--top-", "top_").replace("--", "")) from None
