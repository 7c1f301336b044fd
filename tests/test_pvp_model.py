"""The PVP model: tokenizer, batching, the shared-prefix cache, greedy decoding, regimes, and
the oracle image tokens of stage 0."""

import pytest
import torch

from qgnb.pvp.batch import prompt_tensor, query_tensors
from qgnb.pvp.model import (
    CONTENT,
    IGNORE,
    build_vlm,
    ordinal_embeddings,
    random_vision_tower,
    vision_tower,
)
from qgnb.pvp.regimes import REGIMES, apply_regime, trainable_parameters
from qgnb.pvp.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(["the", "red", "circle", "left of"], locations=8)


def tiny_model(tok, image_source="tower"):
    tower, _ = random_vision_tower(seed=0, hidden=16, layers=1, heads=2)
    torch.manual_seed(0)
    return build_vlm(tower, tok, 8, layers=1, image_source=image_source)


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_numbers_0_to_255_are_single_tokens(tok):
    assert tok.tokens("[reconstruct] loc: [3,12] rgb:") == [
        "[reconstruct]", "loc", ":", "[", "3", ",", "12", "]", "rgb", ":"]  # not on the grid
    assert tok.tokens("[reconstruct] loc: [3,1] rgb:")[3] == "[3,1]"  # a location token
    assert tok.tokens("[0,128,255]") == ["[", "0", ",", "128", ",", "255", "]"]
    assert tok.tokens("[256]") == ["[", "<unk>", "]"]  # outside the vocabulary


def test_segmentation_prompt_tokens_and_unknown_words(tok):
    assert tok.tokens("[segmentation] The red circle left of a blob loc: [0,2] mask:") == [
        "[segmentation]", "the", "red", "circle", "left", "of", "<unk>", "<unk>", "loc", ":",
        "[0,2]", "mask", ":"]


def test_tokenizer_round_trips_through_json(tok):
    again = type(tok).from_str(tok.to_str())
    text = "[segmentation] the red circle loc: [1,2] mask:"
    assert again.encode(text) == tok.encode(text) and again.vocab_size == tok.vocab_size


def test_query_tensors_label_only_the_answer_and_eos(tok):
    ids, mask, labels = query_tensors(tok, [[("loc: [11,2]", "1"), ("loc:", "[3,4,5]")]])
    assert ids.shape == mask.shape == labels.shape == (1, 2, 10)
    first = tok.encode("loc: [11,2]") + tok.encode("1") + [tok.eos_id]
    assert ids[0, 0, :9].tolist() == first and ids[0, 0, 9] == tok.pad_id
    assert mask[0, 0].tolist() == [1] * 9 + [0]
    assert labels[0, 0].tolist() == [IGNORE] * 7 + [tok.encode("1")[0], tok.eos_id, IGNORE]
    assert labels[0, 1].tolist() == [IGNORE] * 2 + tok.encode("[3,4,5]") + [tok.eos_id]


def test_query_tensors_need_equal_query_counts(tok):
    with pytest.raises(ValueError, match="same number of queries"):
        query_tensors(tok, [[("loc:", "1")], []])
    with pytest.raises(ValueError, match="one token length"):
        prompt_tensor(tok, ["loc:", "loc: [11,2]"])


def test_shared_prefix_cache_equals_running_each_query_with_its_own_prefix(tok):
    model = tiny_model(tok).eval()
    pixels = torch.randn(2, 3, 64, 64)
    ids, mask, labels = query_tensors(tok, [[("loc: [1,2] rgb:", "[1,2,3]"), ("loc:", "0")],
                                            [("the red circle", "1"), ("loc:", "[9,9,9]")]])
    loss, logits = model(pixels, ids, mask, labels)
    # Reference: every query concatenated to its own copy of the image tokens, one pass.
    image = model.image_tokens(pixels).repeat_interleave(2, dim=0)
    text = model.lm.transformer.wte(ids.reshape(4, -1))
    full_mask = torch.cat([torch.ones(4, image.shape[1], dtype=torch.long),
                           mask.reshape(4, -1)], dim=1)
    reference = model.lm(inputs_embeds=torch.cat([image, text], 1),
                         attention_mask=full_mask).logits[:, image.shape[1]:]
    real = mask.reshape(4, -1).bool()
    torch.testing.assert_close(logits.reshape(4, ids.shape[-1], -1)[real], reference[real],
                               atol=1e-5, rtol=1e-5)
    ref_loss = torch.nn.functional.cross_entropy(
        reference[:, :-1].reshape(-1, reference.shape[-1]),
        labels.reshape(4, -1)[:, 1:].reshape(-1), ignore_index=IGNORE)
    torch.testing.assert_close(loss, ref_loss)


def test_greedy_answers_equal_step_by_step_argmax_without_cache(tok):
    model = tiny_model(tok).eval()
    pixels = torch.randn(1, 3, 64, 64)
    prompts = prompt_tensor(tok, ["loc: [1,2] rgb:", "loc: [3,3] rgb:"])[None]
    answers = model.greedy_answers(pixels, prompts, eos_id=tok.eos_id, max_new_tokens=4)
    for q in range(2):
        ids = prompts[0, q]
        for k in range(4):
            image = model.image_tokens(pixels)
            text = model.lm.transformer.wte(ids)[None]
            nxt = model.lm(inputs_embeds=torch.cat([image, text], 1)).logits[0, -1].argmax()
            assert answers[0, q, k] == nxt
            if nxt == tok.eos_id:
                assert (answers[0, q, k:] == tok.eos_id).all()
                break
            ids = torch.cat([ids, nxt[None]])


@pytest.mark.parametrize("regime, parts", [
    ("connector", ["connector"]),
    ("connector+lm", ["connector", "lm"]),
    ("connector+lm+vision", ["connector", "lm", "vision"]),
])
def test_regimes_train_exactly_their_parts(tok, regime, parts):
    model = apply_regime(tiny_model(tok), regime)
    assert trainable_parameters(model) == sum(count(getattr(model, p)) for p in parts)
    for name in ("connector", "lm", "vision"):
        flags = {p.requires_grad for p in getattr(model, name).parameters()}
        assert flags == {name in parts}


def test_regime_parameter_counts_by_hand(tok):
    model = tiny_model(tok)
    # Connector: Linear(16 -> 128) + Linear(128 -> 1 cell x 64 content dimensions).
    connector = (16 * 128 + 128) + (128 * 64 + 64)
    assert trainable_parameters(apply_regime(model, "connector")) == connector
    # GPT-2, 1 layer, width 128, tied output: token + position embeddings, one block, final LN.
    v, d, n = tok.vocab_size, 128, 64 + 64
    attention = (d * 3 * d + 3 * d) + (d * d + d)
    mlp = (d * 4 * d + 4 * d) + (4 * d * d + d)
    block = 2 * d + attention + 2 * d + mlp  # two layer norms
    lm = v * d + n * d + block + 2 * d
    assert trainable_parameters(apply_regime(model, "connector+lm")) == connector + lm
    assert trainable_parameters(apply_regime(model, "connector+lm+vision")) == (
        connector + lm + count(model.vision))
    assert set(REGIMES) == {"connector", "connector+lm", "connector+lm+vision"}


def test_frozen_parts_get_no_gradient_in_a_step(tok):
    model = apply_regime(tiny_model(tok), "connector")
    ids, mask, labels = query_tensors(tok, [[("loc: [1,1] rgb:", "[1,2,3]")]])
    loss, _ = model(torch.randn(1, 3, 64, 64), ids, mask, labels)
    loss.backward()
    assert all(p.grad is None for p in model.lm.parameters())
    assert all(p.grad is None for p in model.vision.parameters())
    assert all(p.grad is not None for p in model.connector.parameters())


def test_unknown_regime_vision_source_and_image_source_are_errors(tok):
    with pytest.raises(ValueError, match="unknown regime 'lm'"):
        apply_regime(tiny_model(tok), "lm")
    with pytest.raises(ValueError, match="unknown vision source 'imagenet'"):
        vision_tower("imagenet")
    with pytest.raises(ValueError, match="unknown image source 'pixels'"):
        tiny_model(tok, image_source="pixels")


def test_oracle_tokens_map_each_cells_exact_mean_colour(tok):
    model = tiny_model(tok, image_source="oracle")
    pixels = torch.zeros(1, 3, 64, 64)
    pixels[0, :, 8:16, 0:8] = torch.tensor([1.0, -2.0, 0.5])[:, None, None]  # cell (1, 0)
    pixels[0, 0, 0:4, 8:16] = 4.0  # half of cell (0, 1): its mean red is 2
    tokens = model.image_tokens(pixels)
    content = tokens[0, :, CONTENT:]
    weight, bias = model.connector.weight.detach(), model.connector.bias.detach()
    assert tuple(weight.shape) == (64, 3)  # the oracle's connector: colour -> content
    torch.testing.assert_close(content[8], weight @ torch.tensor([1.0, -2.0, 0.5]) + bias)
    torch.testing.assert_close(content[1], weight @ torch.tensor([2.0, 0.0, 0.0]) + bias)
    torch.testing.assert_close(content[0], bias)  # a zero cell carries the bias alone
    assert tokens[0, 8, :32].nonzero().flatten().tolist() == [1, 8]  # row 1, column 0
    # The oracle ignores the tower: gradients reach its map, never the tower.
    ids, mask, labels = query_tensors(tok, [[("[reconstruct] loc: [1,0] rgb:", "[1,2,3]")]])
    model(pixels, ids, mask, labels)[0].backward()
    assert all(p.grad is not None for p in model.connector.parameters())
    assert all(p.grad is None for p in model.vision.parameters())
    assert tiny_model(tok).image_source == "tower"


def test_ordinal_embeddings_put_near_numbers_near():
    e = ordinal_embeddings(256, 128, scale=0.02)
    assert e.shape == (256, 128)
    assert float(e.std()) == pytest.approx(0.02, rel=0.05)
    similarity = e @ e[137]
    assert int(similarity.argmax()) == 137
    assert similarity[136] > similarity[120] > similarity[20]
    with pytest.raises(ValueError, match="even"):
        ordinal_embeddings(4, 3)


def test_number_tokens_start_from_ordinal_embeddings(tok):
    model = tiny_model(tok)
    wte = model.lm.transformer.wte.weight
    torch.testing.assert_close(wte[tok.number_ids], ordinal_embeddings(256, 128))
    assert tok.number_ids[:3] == tok.encode("0 1 2")
    assert model.lm.lm_head.weight is wte  # answers are scored against the same embeddings
