"""The two translation endpoints' logic: LibreTranslate's `/translate` and our `/api/translate`.

Both read the fields (`requests`), pick the model, check the limits, and hand the sentences to
the batcher; they differ in what they accept and in the shape of the answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from transformer.config import DecodeConfig
from transformer.decoding.sampling import Sampling
from transformer.serve import requests as rq
from transformer.serve.batching import Batcher, Job
from transformer.serve.models import Hypotheses, ServedModel


@dataclass
class Translate:
    """What the endpoints share: the models, the limits, the batcher and the timeout."""

    models: dict[str, ServedModel]
    limits: rq.Limits
    batcher: Batcher
    timeout: float
    counted: Callable[[str, int], None]  # told (direction, sentences) of each answer

    async def decode(
        self,
        model: ServedModel,
        lines: list[str],
        pieces: list[int],
        decode: DecodeConfig,
        sampling: Sampling | None = None,
    ) -> list[Hypotheses]:
        """The n-best of each line, decoded in a batch with other requests' lines where allowed.

        Sampled requests are decoded alone: their random draws then depend on the request only
        (the same seed gives what `tmt-translate --sample --seed` gives for those lines).
        """
        width = decode.beam_size if sampling is None else decode.n_best
        job = Job(
            key=None if sampling else (model.direction, dataclasses.astuple(decode)),
            sentences=lines,
            cost=sum(p + 1 for p in pieces) * width,
            decode=functools.partial(model.nbest, decode=decode, sampling=sampling),
        )
        try:
            results = await asyncio.wait_for(self.batcher.submit(job), self.timeout)
        except asyncio.TimeoutError:
            raise rq.ApiError(
                503, f"no answer within timeout={self.timeout:g} s; retry later.", "timeout"
            ) from None
        self.counted(model.direction, len(lines))
        return results

    async def libre(self, fields: dict) -> dict:
        """LibreTranslate's `/translate`: q (string or list), source, target, alternatives."""
        q = rq.texts(fields, "q")
        source = rq.text_field(fields, "source")
        target = rq.text_field(fields, "target")
        fmt = rq.text_field(fields, "format", required=False) or "text"
        if fmt != "text":
            raise rq.ApiError(
                400,
                f'format "{fmt}" is not supported: markup would not survive translation '
                'sentence by sentence; send plain text (format "text").',
            )
        alternatives = rq.number_field(fields, "alternatives", int, 0)
        if alternatives < 0:
            raise rq.ApiError(400, f"Invalid request: alternatives must be >= 0 ({alternatives}).")
        model = rq.pick_model(self.models, source, target)
        groups = [item.replace("\r\n", "\n").split("\n") for item in q]  # a line is a sentence
        lines = [line for group in groups for line in group]
        pieces = rq.check_size(lines, model, self.limits)
        decode = rq.search({}, model, self.limits, n_best=alternatives + 1)
        hyps = await self.decode(model, lines, pieces, decode)
        texts, alts, start = [], [], 0
        for group in groups:
            own = hyps[start : start + len(group)]
            start += len(group)
            texts.append("\n".join(h[0][0] for h in own))
            count = min(alternatives, max(len(h) for h in own) - 1)
            alts.append(
                ["\n".join(h[min(k, len(h) - 1)][0] for h in own) for k in range(1, count + 1)]
            )
        single = isinstance(fields["q"], str)
        answer: dict = {"translatedText": texts[0] if single else texts}
        if alternatives:
            answer["alternatives"] = alts[0] if single else alts
        if source == "auto":  # not detected: the one source served (see docs/serving.md)
            detected = {"confidence": 100.0, "language": model.source}
            answer["detectedLanguage"] = detected if single else [detected] * len(q)
        return answer

    async def ours(self, fields: dict) -> dict:
        """`/api/translate`: the search settings, scores, n-best, sampling, an attention map."""
        lines = self._lines(fields)
        model = self._model(fields)
        n_best = rq.number_field(fields, "n_best", int, 1)
        if n_best < 1:
            raise rq.ApiError(400, f"Invalid request: n_best must be >= 1 ({n_best}).")
        sampling = rq.sampling(fields)
        decode = rq.search(fields, model, self.limits, n_best=n_best)
        pieces = rq.check_size(lines, model, self.limits)
        index = rq.number_field(fields, "attention", int)
        layer = rq.number_field(fields, "layer", int, -1)
        if index is not None:
            self._check_attention(model, lines, index, sampling)
        hyps = await self.decode(model, lines, pieces, decode, sampling)
        answer = {
            "source": model.source,
            "target": model.target,
            "decode": dataclasses.asdict(decode),
            "sampling": dataclasses.asdict(sampling) if sampling else None,
            "translations": [
                {
                    "text": h[0][0],
                    "score": _number(h[0][1]),
                    "n_best": [{"text": text, "score": _number(score)} for text, score in h],
                }
                for h in hyps
            ],
        }
        if index is not None:
            answer["attention"] = await self._attention(model, lines[index], decode, layer)
            answer["attention"]["sentence"] = index
        return answer

    def _lines(self, fields: dict) -> list[str]:
        text = fields.get("text")
        if isinstance(text, str):
            return text.replace("\r\n", "\n").split("\n")
        lines = rq.texts(fields, "text")
        for number, line in enumerate(lines):
            if "\n" in line:
                raise rq.ApiError(
                    400, f"text[{number}] holds a line break: give one sentence per list item."
                )
        return lines

    def _model(self, fields: dict) -> ServedModel:
        source = rq.text_field(fields, "source", required=False) or "auto"
        target = rq.text_field(fields, "target", required=False)
        if target is None:
            targets = sorted({m.target for m in self.models.values()})
            if len(targets) > 1:
                raise rq.ApiError(
                    400, f"Invalid request: give target (one of {', '.join(targets)})."
                )
            target = targets[0]
        return rq.pick_model(self.models, source, target)

    @staticmethod
    def _check_attention(
        model: ServedModel, lines: list[str], index: int, sampling: Sampling | None
    ) -> None:
        if not 0 <= index < len(lines):
            raise rq.ApiError(400, f"attention={index}: give a sentence index 0..{len(lines) - 1}.")
        if sampling is not None:
            raise rq.ApiError(400, "attention maps follow the search; drop sample for them.")
        if not model.has_attention:
            raise rq.ApiError(400, model.direction + " is served by CTranslate2: no attention map.")

    async def _attention(
        self, model: ServedModel, sentence: str, decode: DecodeConfig, layer: int
    ) -> dict:
        work = functools.partial(model.attention, sentence, decode, layer)
        try:
            return await asyncio.wait_for(self.batcher.run_alone(work), self.timeout)
        except ValueError as error:
            raise rq.ApiError(400, str(error)) from None
        except asyncio.TimeoutError:
            raise rq.ApiError(
                503, f"no answer within timeout={self.timeout:g} s.", "timeout"
            ) from None


def _number(score: float) -> float | None:
    """JSON has no NaN or infinity: a score that is not a number (greedy, sampling) is null."""
    return round(score, 6) if math.isfinite(score) else None
