"""CTranslate2 export: the exported model scores and decodes like ours (greedy token for token,
beam 5 without length penalty on nearly every sentence, int8 within 1 BLEU of float32), for
every architecture switch; a model it cannot express is refused by name; the commands take the
exported folder in place of the checkpoint."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from ct2_helpers import require_ctranslate2, train_briefly
from tiny import CPU, tiny_assets, write_checkpoint, write_tiny_parallel_corpus

from transformer.commands.evaluate import main as evaluate_main
from transformer.commands.export import main as export_main
from transformer.commands.translate import main as translate_main
from transformer.data.special import BOS_ID, EOS_ID, PAD_ID
from transformer.decoding.sampling import Sampling
from transformer.decoding.translator import Translator
from transformer.evaluation.evaluate import text_lines
from transformer.evaluation.metrics import compute_metrics
from transformer.export.ct2_spec import ExportError, build_spec
from transformer.export.folder import export_checkpoint, vocabularies
from transformer.loading import load_model
from transformer.model import build_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny model trained for a few seconds, its checkpoint, and its float32/int8 exports."""
    require_ctranslate2()
    folder = tmp_path_factory.mktemp("export")
    corpus = write_tiny_parallel_corpus(folder / "corpus")
    torch.manual_seed(0)
    model, tokenizer, cfg = tiny_assets(corpus)
    train_briefly(model, tokenizer, corpus)
    ckpt = write_checkpoint(folder / "run" / "last.pt", model, tokenizer, cfg)
    exports = {q: folder / q for q in ("float32", "int8")}
    for quantization, out in exports.items():
        export_checkpoint(ckpt, out, quantization)
    sources = text_lines(corpus["test.en"]) + text_lines(corpus["valid.en"])  # 80 sentences
    refs = text_lines(corpus["test.de"]) + text_lines(corpus["valid.de"])
    return {"model": model, "tokenizer": tokenizer, "cfg": cfg, "ckpt": ckpt, "corpus": corpus,
            "exports": exports, "sources": sources, "refs": refs}  # fmt: skip


def _pair(trained: dict, quantization: str, **decode: object) -> tuple[object, object]:
    """Our Translator and CTranslate2's, with the same search settings."""
    cfg = dataclasses.replace(trained["cfg"].decode, n_best=1, **decode)
    ours = Translator(trained["model"], trained["tokenizer"], cfg, CPU)
    theirs = load_model(trained["exports"][quantization], device="cpu").translator(cfg, threads=1)
    return ours, theirs


@pytest.mark.slow  # the `trained` fixture: hundreds of training updates
def test_float32_greedy_equals_ours_token_for_token(trained: dict) -> None:
    ours, theirs = _pair(trained, "float32", beam_size=1)
    expected = ours.translate_ids(trained["sources"])
    assert len(expected) >= 50 and len({tuple(ids) for ids in expected}) > 40
    assert theirs.translate_ids(trained["sources"]) == expected


@pytest.mark.slow  # the `trained` fixture: hundreds of training updates
def test_beam_5_without_length_penalty_agrees_on_95_percent(trained: dict) -> None:
    ours, theirs = _pair(trained, "float32", beam_size=5, length_penalty=0.0)
    a, b = ours.translate_ids(trained["sources"]), theirs.translate_ids(trained["sources"])
    same = sum(x == y for x, y in zip(a, b, strict=True))
    assert same >= 0.95 * len(a), f"{same} of {len(a)} equal"


@pytest.mark.slow  # the `trained` fixture: hundreds of training updates
def test_int8_bleu_within_one_of_float32(trained: dict) -> None:
    bleu = {}
    for quantization in ("float32", "int8"):
        _, theirs = _pair(trained, quantization, beam_size=5)
        bleu[quantization] = compute_metrics(theirs.translate(trained["sources"]), trained["refs"])
    assert bleu["float32"].bleu > 20  # the model learned something, so the comparison means a lot
    assert abs(bleu["int8"].bleu - bleu["float32"].bleu) <= 1.0, bleu


VARIANTS = {
    "pre-norm, gelu": {"norm_placement": "pre", "activation": "gelu"},
    "learned positions": {"positional": "learned"},
    "separate embeddings, untied output": {"share_embeddings": False, "tie_output": False},
}


@pytest.mark.parametrize("switches", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_architecture_switch_scores_like_ours(
    tmp_path: Path, tiny_parallel_corpus: dict[str, Path], switches: dict
) -> None:
    ct2 = require_ctranslate2()
    _, tokenizer, cfg = tiny_assets(tiny_parallel_corpus)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **switches))
    model = build_model(cfg.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, PAD_ID)
    with torch.no_grad():  # an untrained model, made less uniform so errors show
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    model.eval()
    ckpt = write_checkpoint(tmp_path / "last.pt", model, tokenizer, cfg)
    export_checkpoint(ckpt, tmp_path / "ct2", "float32")
    src = tokenizer.encode_src(["A man runs on the street.", "Dog."])
    tgt = tokenizer.encode_tgt(["Ein mann rennt auf der weg.", "Hund."])
    results = ct2.Translator(str(tmp_path / "ct2")).score_batch(
        [tokenizer.src_id_to_piece(ids) for ids in src],
        [tokenizer.tgt_id_to_piece(ids) for ids in tgt],
    )
    for s, t, result in zip(src, tgt, results, strict=True):
        logits = model(torch.tensor([s + [EOS_ID]]), torch.tensor([[BOS_ID, *t]]))  # (1, T, V)
        lprobs = logits.log_softmax(-1)[0].gather(1, torch.tensor([t + [EOS_ID]]).T)[:, 0]
        torch.testing.assert_close(
            torch.tensor(result.log_probs), lprobs.detach(), atol=1e-4, rtol=1e-4
        )


@pytest.mark.slow  # the `trained` fixture: hundreds of training updates
def test_a_model_ctranslate2_cannot_express_is_refused_by_name(trained: dict) -> None:
    tokenizer, cfg = trained["tokenizer"], trained["cfg"]
    model = build_model(cfg.model, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, PAD_ID)
    model.decoder.layers[0].register_parameter("gate", torch.nn.Parameter(torch.ones(3)))
    with pytest.raises(ExportError, match=r"no place for decoder\.layers\.0\.gate"):
        build_spec(model, cfg.model, *vocabularies(tokenizer))
    other = dataclasses.replace(cfg.model)
    object.__setattr__(other, "positional", "rotary")  # a value a later version might add
    with pytest.raises(ExportError, match=r"model\.positional='rotary'.*cannot express"):
        build_spec(model, other, *vocabularies(tokenizer))


@pytest.mark.slow  # the `trained` fixture: hundreds of training updates
def test_commands_take_the_exported_folder(
    trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "ct2"
    assert export_main([str(trained["ckpt"].parent), str(out), "--quantization", "float32"]) == 0
    assert (out / "spm.model").is_file() and (out / "model.bin").is_file()
    greedy = ["--beam-size", "1", "--out-dir"]
    assert evaluate_main([str(out), *greedy, str(tmp_path / "e1")]) == 0
    assert evaluate_main([str(trained["ckpt"]), *greedy, str(tmp_path / "e2")]) == 0
    (r1,), (r2,) = (list((tmp_path / e).glob("*.json")) for e in ("e1", "e2"))
    exported, checkpoint = (json.loads(r.read_text("utf-8")) for r in (r1, r2))
    assert exported["data"] == checkpoint["data"] == "test"  # the checkpoint's default split
    assert exported["metrics"] == checkpoint["metrics"]
    assert exported["engine"] == "ctranslate2 (float32)"
    capsys.readouterr()
    assert translate_main([str(out), "--n-best", "2", "Dog.", "A man runs."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["0", "0", "1", "1"]


@pytest.mark.slow  # the `trained` fixture: hundreds of training updates
def test_export_never_replaces_a_folder_that_is_not_an_export(
    trained: dict, tmp_path: Path
) -> None:
    """Exporting a run into its own folder would delete the run: refused, nothing touched."""
    run = trained["ckpt"].parent
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(ExportError, match="is not an exported model"):
        export_checkpoint(trained["ckpt"], run, "float32")
    assert sorted(p.name for p in run.iterdir()) == before
    out = tmp_path / "again"
    export_checkpoint(trained["ckpt"], out, "float32")
    export_checkpoint(trained["ckpt"], out, "int8")  # an earlier export is replaced
    assert json.loads((out / "export.json").read_text("utf-8"))["quantization"] == "int8"


def test_export_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert export_main([str(tmp_path / "missing.pt"), str(tmp_path / "out")]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the `trained` fixture: hundreds of training updates
def test_sampling_with_ctranslate2_is_seeded_and_top_k_1_is_greedy(trained: dict) -> None:
    cfg = dataclasses.replace(trained["cfg"].decode, beam_size=3, n_best=3)
    loaded = load_model(trained["exports"]["float32"], device="cpu")
    sources = trained["sources"][:10]

    def draw(sampling: Sampling) -> list[list[str]]:
        results = loaded.translator(cfg, sampling=sampling, threads=1).translate_nbest(sources)
        return [[text for text, _ in samples] for samples in results]

    first = draw(Sampling(temperature=1.5, seed=3))
    assert all(len(samples) == 3 for samples in first)
    assert draw(Sampling(temperature=1.5, seed=3)) == first
    assert len({text for samples in first for text in samples}) > len(sources)
    greedy, _ = _pair(trained, "float32", beam_size=1)
    assert [s[0] for s in draw(Sampling(top_k=1, seed=9))] == greedy.translate(sources)
