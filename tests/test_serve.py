"""tmt-serve against a real server process on a loopback port, with a tiny trained model:
LibreTranslate's shape (plain HTTP and the libretranslatepy client), batched answers equal to
`tmt-translate` one sentence at a time, every bad input's status, metrics, a CTranslate2 export,
and SIGTERM during a batch."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import TEST_SENTENCES, Server, post, post_raw, served_checkpoint
from tiny import ONE_THREAD

from transformer.commands import translate

pytestmark = pytest.mark.slow
KEY = "s3cret"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("fastapi")
    return served_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def server(checkpoint: Path) -> Iterator[Server]:
    """The key comes from the environment; small limits; one CORS origin; a long batching
    window (300 ms), so that requests sent together share batches."""
    env = {**ONE_THREAD, "TMT_SERVE_API_KEY": KEY}
    flags = ["--max-chars", "300", "--max-sentences", "8", "--max-pieces", "40"]
    flags += ["--cors", "http://allowed.test"]
    running = Server(str(checkpoint), *flags, "--max-batch-wait", "300", env=env)
    yield running
    status, log = running.stop()
    assert status == 0, log
    assert "Traceback" not in log


def _translate_alone(checkpoint: Path, sentence: str, *flags: str) -> list[str]:
    """What `tmt-translate CHECKPOINT SENTENCE` prints, one sentence per run."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert translate.main([str(checkpoint), sentence, *flags]) == 0
    return out.getvalue().splitlines()


def test_libretranslate_shape_over_plain_http(server: Server) -> None:
    url = server.url + "/translate"
    status, one = post(
        url, {"q": TEST_SENTENCES[0], "source": "en", "target": "de", "api_key": KEY}
    )
    assert status == 200 and isinstance(one["translatedText"], str) and one["translatedText"]
    status, many = post(
        url, {"q": TEST_SENTENCES[:3], "source": "en", "target": "de", "api_key": KEY}
    )
    assert status == 200 and len(many["translatedText"]) == 3
    assert many["translatedText"][0] == one["translatedText"]
    fields = {"q": TEST_SENTENCES[0], "source": "auto", "target": "de", "api_key": KEY}
    status, form = post(url, fields | {"alternatives": "2"}, form=True)
    assert status == 200 and form["translatedText"] == one["translatedText"]
    assert len(form["alternatives"]) == 2 and one["translatedText"] not in form["alternatives"]
    assert form["detectedLanguage"]["language"] == "en"
    status, languages = server.get("/languages")
    assert status == 200
    assert {"code": "en", "name": "English", "targets": ["de"]} in languages


def test_the_libretranslatepy_client_speaks_to_it(server: Server) -> None:
    from libretranslatepy import LibreTranslateAPI

    client = LibreTranslateAPI(server.url, api_key=KEY)
    _, expected = post(
        server.url + "/translate",
        {"q": TEST_SENTENCES[1], "source": "en", "target": "de", "api_key": KEY},
    )
    assert client.translate(TEST_SENTENCES[1], "en", "de") == expected["translatedText"]
    assert [language["code"] for language in client.languages()] == ["de", "en"]


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


def test_batched_answers_equal_tmt_translate_one_at_a_time(
    server: Server, checkpoint: Path
) -> None:
    _, before = server.get("/metrics")
    url = server.url + "/translate"

    def ask(sentence: str) -> dict:
        fields = {"q": sentence, "source": "en", "target": "de", "alternatives": 1, "api_key": KEY}
        status, answer = post(url, fields)
        assert status == 200, answer
        return answer

    with concurrent.futures.ThreadPoolExecutor(len(TEST_SENTENCES)) as pool:
        answers = list(pool.map(ask, TEST_SENTENCES))
    _, after = server.get("/metrics")
    batches = _metric(after, "tmt_batches_total") - _metric(before, "tmt_batches_total")
    assert 1 <= batches < len(TEST_SENTENCES)  # requests were decoded together
    for sentence, answer in zip(TEST_SENTENCES, answers, strict=True):
        best = _translate_alone(checkpoint, sentence)
        nbest = _translate_alone(checkpoint, sentence, "--n-best", "2")
        assert answer["translatedText"] == best[0]
        assert [answer["translatedText"], *answer["alternatives"]] == [
            line.split("\t")[2] for line in nbest
        ]


BASE = {"source": "en", "target": "de", "api_key": KEY}
BAD_TRANSLATE = [
    (b"{not json", 400, "malformed JSON"),
    (b"[1, 2]", 400, "object"),
    (BASE | {"q": 5}, 400, "q must be"),
    (BASE, 400, "missing q"),
    (BASE | {"q": []}, 400, "missing q"),
    ({"q": "A dog.", "target": "de", "api_key": KEY}, 400, "missing source"),
    (BASE | {"q": "A dog.", "target": ["de"]}, 400, "target must be a string"),
    (BASE | {"q": "A dog.", "target": "fr"}, 400, "en-de"),
    (BASE | {"q": "A dog.", "source": "fr"}, 400, "en-de"),
    (BASE | {"q": "<b>A</b> dog.", "format": "html"}, 400, "html"),
    (BASE | {"q": "A", "alternatives": "two"}, 400, "alternatives"),
    (BASE | {"q": "A", "alternatives": -1}, 400, "alternatives"),
    (BASE | {"q": "A", "alternatives": 20}, 413, "max_alternatives"),
    (BASE | {"q": "A dog.", "api_key": None}, 403, "API key"),
    (BASE | {"q": "A dog.", "api_key": "wrong"}, 403, "API key"),
    (BASE | {"q": "a" * 301}, 413, "max_chars"),
    (BASE | {"q": "a\n" * 9}, 413, "max_sentences"),
    (BASE | {"q": "a b " * 50}, 413, "max_pieces"),
]


@pytest.mark.parametrize(("body", "status", "says"), BAD_TRANSLATE)
def test_bad_translate_requests_get_their_status(
    server: Server, body: bytes | dict, status: int, says: str
) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    got, answer = post_raw(server.url + "/translate", data, {"Content-Type": "application/json"})
    assert (got, says in answer["error"] or says == answer.get("limit")) == (status, True), answer


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"text": "A dog.", "beam_size": 0}, 400, "beam_size"),
        ({"text": "A dog.", "beam_size": 99}, 413, "max_beam"),
        ({"text": "A dog.", "n_best": 4, "beam_size": 2}, 400, "n_best"),
        ({"text": "A dog.", "length_penalty": "high"}, 400, "length_penalty"),
        ({"text": "A dog.", "sample": True, "top_p": 2}, 400, "top_p"),
        ({"text": "A dog.", "attention": 3}, 400, "attention=3"),
        ({"text": "A dog.", "attention": 0, "layer": 7}, 400, "layer 7"),
        ({"text": ["A dog.\nA cat."]}, 400, "line break"),
    ],
)
def test_bad_api_requests_get_their_status(
    server: Server, fields: dict, status: int, says: str
) -> None:
    got, answer = post(server.url + "/api/translate", fields | {"api_key": KEY})
    assert got == status and (says in answer["error"] or says == answer.get("limit")), answer


def test_other_bad_requests_get_json_errors(server: Server) -> None:
    got, answer = post_raw(server.url + "/translate", b"q=a", {"Content-Type": "text/plain"})
    assert got == 415 and "JSON or form" in answer["error"]
    assert server.get("/nowhere")[0] == 404
    request = post_raw(server.url + "/health", b"", {})
    assert request[0] == 405 and "error" in request[1]


def test_our_api_gives_scores_nbest_sampling_and_attention(
    server: Server, checkpoint: Path
) -> None:
    url = server.url + "/api/translate"
    fields = {
        "text": TEST_SENTENCES[:2],
        "n_best": 3,
        "beam_size": 4,
        "attention": 1,
        "api_key": KEY,
    }
    status, answer = post(url, fields)
    assert status == 200 and answer["decode"]["beam_size"] == 4
    for result, sentence in zip(answer["translations"], TEST_SENTENCES[:2], strict=True):
        scores = [h["score"] for h in result["n_best"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert result["text"] == _translate_alone(checkpoint, sentence, "--beam-size", "4")[0]
    attention = answer["attention"]
    assert (
        attention["sentence"] == 1 and attention["translation"] == answer["translations"][1]["text"]
    )
    weights = attention["weights"]  # (T, S): each output piece's attention sums to 1
    assert len(weights) == len(attention["tgt_pieces"])
    assert all(
        len(row) == len(attention["src_pieces"]) and abs(sum(row) - 1) < 1e-2 for row in weights
    )
    sample = {"text": TEST_SENTENCES[0], "sample": True, "seed": 7, "api_key": KEY}
    first, second = post(url, sample)[1], post(url, sample)[1]
    assert first["translations"] == second["translations"]
    drawn = _translate_alone(checkpoint, TEST_SENTENCES[0], "--sample", "--seed", "7")
    assert first["translations"][0]["text"] == drawn[0]


def test_health_models_and_metrics(server: Server, checkpoint: Path) -> None:
    assert server.get("/health") == (200, {"status": "ok"})
    status, models = server.get("/models")
    model = models["models"][0]
    assert status == 200 and model["checkpoint"] == str(checkpoint) and model["engine"] == "pytorch"
    assert re.fullmatch(r"[0-9a-f]{16}", model["config_hash"]) and model["device"] == "cpu"
    assert model["threads"] >= 1 and models["api_key_required"] is True
    status, text = server.get("/metrics")
    assert status == 200
    for name in (
        "tmt_requests_total",
        "tmt_sentences_total",
        "tmt_batches_total",
        "tmt_request_seconds_bucket",
        "process_resident_memory_bytes",
    ):
        assert name in text
    assert _metric(text, 'tmt_requests_total{endpoint="/health",status="200"}') >= 1


def test_an_exported_ctranslate2_folder_is_served(checkpoint: Path, tmp_path: Path) -> None:
    """An int8 export, batched: its answers equal tmt-translate on the folder, one at a time."""
    from ct2_helpers import require_ctranslate2

    from transformer.export.folder import export_checkpoint

    require_ctranslate2()
    folder = tmp_path / "int8"
    export_checkpoint(checkpoint, folder, "int8")
    running = Server(str(folder), "--max-batch-wait", "300")
    try:
        _, models = running.get("/models")
        assert models["models"][0]["engine"] == "ctranslate2 (int8)"
        fields = {"source": "en", "target": "de", "alternatives": 1}
        with concurrent.futures.ThreadPoolExecutor(len(TEST_SENTENCES)) as pool:
            answers = list(
                pool.map(
                    lambda q: post(running.url + "/translate", fields | {"q": q}), TEST_SENTENCES
                )
            )
        for sentence, (status, answer) in zip(TEST_SENTENCES, answers, strict=True):
            alone = [
                line.split("\t")[2] for line in _translate_alone(folder, sentence, "--n-best", "2")
            ]
            assert status == 200 and [answer["translatedText"], *answer["alternatives"]] == alone
        status, refused = post(running.url + "/api/translate", {"text": "A dog.", "attention": 0})
        assert status == 400 and "CTranslate2" in refused["error"]
    finally:
        assert running.stop()[0] == 0


def test_sigterm_during_a_batch_answers_the_request_then_exits_0(checkpoint: Path) -> None:
    running = Server(str(checkpoint), "--max-batch-wait", "1500")
    answers: list = []
    sender = threading.Thread(
        target=lambda: answers.append(
            post(running.url + "/translate", {"q": TEST_SENTENCES, "source": "en", "target": "de"})
        )
    )
    sender.start()
    time.sleep(0.5)  # the request now waits in its batch (1.5 s window)
    status, log = running.stop(signal.SIGTERM)
    sender.join(30)
    assert status == 0, log
    assert (
        answers
        and answers[0][0] == 200
        and len(answers[0][1]["translatedText"]) == len(TEST_SENTENCES)
    )
    assert "Traceback" not in log


def test_cors_is_off_unless_asked_for_an_origin(server: Server) -> None:
    for origin, allowed in (("http://allowed.test", True), ("http://other.test", False)):
        request = urllib.request.Request(server.url + "/languages", headers={"Origin": origin})
        with urllib.request.urlopen(request, timeout=30) as response:
            header = response.headers.get("access-control-allow-origin")
        assert (header == origin) is allowed and (header is None) is not allowed


def test_a_request_past_its_timeout_gets_503(checkpoint: Path) -> None:
    running = Server(str(checkpoint), "--timeout", "0.3", "--max-batch-wait", "2000")
    try:
        status, answer = post(
            running.url + "/translate", {"q": "A dog.", "source": "en", "target": "de"}
        )
        assert status == 503 and answer["limit"] == "timeout"
    finally:
        assert running.stop()[0] == 0


def test_the_load_benchmark_runs_on_a_tiny_model(
    checkpoint: Path, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    from transformer.benchmarks import serve_load

    corpus = checkpoint.parent / "corpus" / "test.en"
    argv = [str(checkpoint), "--src", str(corpus), "--levels", "1,4", "--requests", "8"]
    assert serve_load.run([*argv, "--threads", "1", "--json", str(tmp_path / "load.json")]) == 0
    out = capsys.readouterr().out
    assert "4 clients: batched / unbatched throughput" in out
    figures = json.loads((tmp_path / "load.json").read_text())
    assert [(lv["mode"], lv["clients"], lv["errors"]) for lv in figures["levels"]] == [
        ("batched", 1, 0), ("batched", 4, 0), ("unbatched", 1, 0), ("unbatched", 4, 0)
    ]  # fmt: skip
    assert all(lv["requests"] == 8 and lv["mean_batch"] >= 1 for lv in figures["levels"])
