"""qgnb.zoo: losses on hand-computed inputs, names and errors, batches, shipped checkpoints."""

import math

import pytest
import torch

import qgnb.zoo.models as zoo_models
from qgnb.data import shapes
from qgnb.data.shapes import referents
from qgnb.zoo import MODEL_NAMES, card, load, load_model, spec
from qgnb.zoo.batches import draw_batch, scene_pool
from qgnb.zoo.cards import EVAL_SEED, SLICE_N
from qgnb.zoo.evaluation import heldout_score, matching_pairs
from qgnb.zoo.losses import amc_loss, amc_margin_loss, inside_share_loss, itc_loss, itm_loss
from qgnb.zoo.tokenizer import shapes_tokenizer, word_tokenizer


def check_close(value: torch.Tensor, expected: list[float] | float) -> None:
    assert torch.allclose(torch.as_tensor(value, dtype=torch.float32),
                          torch.as_tensor(expected, dtype=torch.float32), atol=1e-4), value


# A 2x2 map and the region "top-right pixel".
TOP_RIGHT = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])


def test_amc_margin_zero_when_inside_max_beats_outside_by_more_than_margin():
    # inside max 1.0, outside max 0.3: difference 0.7 > margin 0.5
    check_close(amc_margin_loss(torch.tensor([[[0.3, 1.0], [0.1, 0.0]]]), TOP_RIGHT, 0.5), [0.0])


def test_amc_margin_hand_computed_when_outside_wins():
    # after dividing by the max (1.0): inside 0.8, outside 1.0 -> relu(0.5 - (0.8 - 1.0)) = 0.7
    check_close(amc_margin_loss(torch.tensor([[[0.2, 0.8], [1.0, 0.0]]]), TOP_RIGHT, 0.5), [0.7])


def test_amc_margin_just_short_of_margin():
    # map / 2: inside 1.0, outside 0.6 -> relu(0.5 - 0.4) = 0.1
    check_close(amc_margin_loss(torch.tensor([[[1.2, 2.0], [0.0, 0.0]]]), TOP_RIGHT, 0.5), [0.1])


def test_inside_share_hand_computed_and_scale_invariant():
    a = torch.tensor([[[0.2, 0.8], [1.0, 0.0]]])
    check_close(inside_share_loss(a, TOP_RIGHT), [1 - 0.8 / 2.0])
    check_close(inside_share_loss(7.0 * a, TOP_RIGHT), [1 - 0.8 / 2.0])
    check_close(amc_loss(a, TOP_RIGHT, margin=0.5, share_weight=2.0), 0.7 + 2 * 0.6)


def test_amc_negative_values_are_clipped_and_flat_map_has_full_share_loss():
    check_close(inside_share_loss(torch.tensor([[[-1.0, 1.0], [0.0, 0.0]]]), TOP_RIGHT), [0.0])
    check_close(inside_share_loss(torch.zeros(1, 2, 2), TOP_RIGHT), [1.0])


def test_amc_rejects_bad_shapes_and_empty_regions():
    with pytest.raises(ValueError, match="maps and masks"):
        amc_margin_loss(torch.zeros(1, 2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="no pixel inside"):
        amc_margin_loss(torch.ones(1, 2, 2), torch.zeros(1, 2, 2))


def test_itc_loss_hand_computed():
    f = torch.eye(2)
    # logits [[1, 0], [0, 1]] at temperature 1: -log(e / (e + 1)) both ways
    check_close(itc_loss(f, f, torch.eye(2, dtype=torch.bool), 1.0), math.log(1 + math.e) - 1)
    # identical texts: targets (0.5, 0.5), loss = mean of the two log-probabilities
    same = torch.ones(2, 2, dtype=torch.bool)
    expected = 0.5 * ((math.log(1 + math.e) - 1) + math.log(1 + math.e))
    check_close(itc_loss(f, f, same, 1.0), expected)
    with pytest.raises(ValueError, match="diagonal"):
        itc_loss(f, f, torch.zeros(2, 2, dtype=torch.bool))


def test_itm_loss_hand_computed():
    check_close(itm_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([True])), math.log(2))
    check_close(itm_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([False])),
                math.log(1 + math.exp(-2)))


def test_word_tokenizer_one_token_per_word():
    tok = word_tokenizer(["the", "red", "circle"])
    assert tok("the red circle")["input_ids"] == [2, 5, 6, 7, 3]
    assert tok("the blue circle")["input_ids"] == [2, 5, 1, 7, 3]  # unknown word -> [UNK]
    with pytest.raises(ValueError, match="single word"):
        word_tokenizer(["left of"])
    shapes_tok = shapes_tokenizer()
    phrase = "the small red circle left of the large blue square"
    assert shapes_tok.unk_token_id not in shapes_tok(phrase)["input_ids"]


def test_unknown_model_name_lists_known_names():
    with pytest.raises(ValueError, match="shapes-blip-base") as error:
        spec("shapes-blip-huge")
    assert all(name in str(error.value) for name in MODEL_NAMES)
    with pytest.raises(ValueError, match="unknown zoo model"):
        load_model("no-such-model")


def test_missing_checkpoint_dir_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo_models, "CHECKPOINTS", tmp_path)
    with pytest.raises(FileNotFoundError, match="shapes-blip-base.*python -m qgnb.zoo.train"):
        load_model("shapes-blip-base")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        zoo_models.load_checkpoint(tmp_path / "nowhere", "blip")


def test_batches_are_deterministic_and_negatives_refer_to_nothing():
    pool = scene_pool("train", 40, 0)
    batch = draw_batch(pool, 16, seed=0, step=7)
    assert batch.indices == draw_batch(pool, 16, seed=0, step=7).indices
    assert batch.indices != draw_batch(pool, 16, seed=0, step=8).indices
    for index, negative in zip(batch.indices, batch.negatives, strict=True):
        assert referents(pool.metas[index], negative) == []
    for index, phrase in zip(batch.indices, batch.phrases, strict=True):
        assert referents(pool.metas[index], phrase) == [pool.metas[index]["target"]]
    same = batch.same_text()
    assert same.diagonal().all()
    assert bool(same[0, 1]) == (batch.phrases[0] == batch.phrases[1])


def test_several_negatives_per_scene_are_negative_major_and_refer_to_nothing():
    pool = scene_pool("train", 40, 0)
    batch = draw_batch(pool, 8, seed=0, step=3, negatives_per_scene=3)
    assert len(batch.negatives) == 3 * 8
    # Negative k of scene i sits at k * B + i; every one is false for its own scene.
    for k in range(3):
        for i, index in enumerate(batch.indices):
            assert referents(pool.metas[index], batch.negatives[k * 8 + i]) == []
    # With one negative per scene the batch is the one the single-negative recipes draw.
    assert draw_batch(pool, 8, 0, 3).negatives == draw_batch(pool, 8, 0, 3, 1).negatives


def test_matching_pairs_are_balanced_and_negatives_false():
    samples = shapes("id", 20, EVAL_SEED)
    index, phrases, labels = matching_pairs(samples)
    assert labels == [True, False] * 20
    for i, phrase, label in zip(index, phrases, labels, strict=True):
        assert bool(referents(samples[i].meta, phrase)) == label


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shipped_model_reproduces_its_card(name):
    model, processor = load_model(name)
    stored = card(name)["heldout"]
    assert stored["slice_n"] == SLICE_N
    samples = shapes("id", SLICE_N, EVAL_SEED)
    score = heldout_score(model, processor, spec(name).architecture.family, samples)
    assert abs(score - stored["slice_value"]) <= 0.01


def test_loaded_explainer_maps_at_image_size():
    sample = shapes("id", 1, EVAL_SEED)[0]
    maps = load("shapes-blip-base")([sample.image], [sample.phrase])
    assert tuple(maps.shape) == (1, 64, 64)
    assert bool(torch.isfinite(maps).all())


def _tiny_run(tmp_path, monkeypatch, *, interrupt_at: int | None = None, fresh: bool = False,
              saved: list | None = None):
    # A 4-step BLIP recipe on 32 scenes, saved every 2 steps, into temporary folders (the
    # package's checkpoint of shapes-blip-base is untouched).
    import dataclasses

    import qgnb.zoo.train as zoo_train

    recipe = dataclasses.replace(spec("shapes-blip-base").recipe, stages=(("itc", 2), ("itm", 2)),
                                 batch_size=8, warmup_steps=1, train_scenes=32)
    monkeypatch.setattr(zoo_train, "SAVE_EVERY", 2)
    save_state = zoo_train._save_state

    def save_then_maybe_die(state_file, zoo_spec, model, heads, optimizer, step, log, seconds):
        save_state(state_file, zoo_spec, model, heads, optimizer, step, log, seconds)
        if saved is not None:
            saved.append(step)
        if step == interrupt_at:
            raise KeyboardInterrupt

    monkeypatch.setattr(zoo_train, "_save_state", save_then_maybe_die)
    directory = zoo_train.train("shapes-blip-base", fresh=fresh, runs=tmp_path / "runs",
                                recipe=recipe, directory=tmp_path / "checkpoint")
    assert directory == tmp_path / "checkpoint"
    model, _ = zoo_models.load_checkpoint(directory, "blip")
    return model.state_dict()


def test_killed_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    straight = _tiny_run(tmp_path / "a", monkeypatch, fresh=True)
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path / "b", monkeypatch, interrupt_at=2, fresh=True)
    saved = []
    resumed = _tiny_run(tmp_path / "b", monkeypatch, saved=saved)
    assert saved == [4]  # it went on from step 2: no save at step 2 again
    assert straight.keys() == resumed.keys()
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key


def test_clip_hard_negative_softmax_equals_per_image_computation():
    from qgnb.zoo.models import new_model
    from qgnb.zoo.train import PhraseTokens, PixelValues, _clip_losses

    model, processor = new_model(spec("shapes-clip"))
    pool = scene_pool("train", 12, 0)
    batch = draw_batch(pool, 4, seed=0, step=1, negatives_per_scene=2)
    pixel_values = PixelValues(processor, pool)(batch.indices)
    assert torch.equal(pixel_values, processor.image_processor(batch.images, return_tensors="pt")
                       ["pixel_values"])  # the cache gives what the processor gives
    losses = _clip_losses(model, pixel_values, PhraseTokens(processor), batch, spec("shapes-clip"))
    expected = []
    with torch.no_grad():
        for i in range(4):
            texts = [batch.phrases[i], batch.negatives[i], batch.negatives[4 + i]]
            inputs = processor(images=[batch.images[i]], text=texts, padding=True,
                               return_tensors="pt")
            image = torch.nn.functional.normalize(
                model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output,
                dim=-1)
            text = torch.nn.functional.normalize(
                model.get_text_features(input_ids=inputs["input_ids"],
                                        attention_mask=inputs["attention_mask"]).pooler_output,
                dim=-1)
            logits = (text @ image[0]) / 0.07
            expected.append(-torch.log_softmax(logits, 0)[0])
    check_close(losses["itm"], torch.stack(expected).mean().item())


def test_clip_layout_loss_reads_the_image_embedding_it_scores_phrases_against():
    import dataclasses

    from qgnb.zoo.attributes import AttributeHeads
    from qgnb.zoo.models import new_model
    from qgnb.zoo.train import PhraseTokens, PixelValues, _clip_losses

    clip = spec("shapes-clip")
    recipe = dataclasses.replace(clip.recipe, layout_weight=2.0)
    zoo_spec = dataclasses.replace(clip, recipe=recipe)
    model, processor = new_model(zoo_spec)
    heads = AttributeHeads(zoo_spec.architecture.hidden, zoo_spec.architecture.embed_dim)
    pool = scene_pool("train", 12, 0)
    batch = draw_batch(pool, 4, seed=0, step=1)
    losses = _clip_losses(model, PixelValues(processor, pool)(batch.indices),
                          PhraseTokens(processor), batch, zoo_spec, heads)
    with torch.no_grad():
        image = torch.nn.functional.normalize(model.get_image_features(
            pixel_values=processor.image_processor(batch.images, return_tensors="pt")
            ["pixel_values"]).pooler_output, dim=-1)
        expected = 2.0 * heads.layout_loss(image, batch.metas)
    check_close(losses["layout"], expected.item())
    assert losses["layout"].requires_grad


def test_layout_weight_on_a_blip_recipe_is_a_clear_error(tmp_path):
    import dataclasses

    import qgnb.zoo.train as zoo_train

    recipe = dataclasses.replace(spec("shapes-blip-base").recipe, layout_weight=1.0)
    with pytest.raises(ValueError, match="layout_weight reads CLIP"):
        zoo_train.train("shapes-blip-base", fresh=True, recipe=recipe, runs=tmp_path,
                        directory=tmp_path)
