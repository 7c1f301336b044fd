"""qgnb.zoo.attributes, relation negatives and the reading rule: hand-computed values."""

import math

import pytest
import torch

from qgnb.data.shapes import RELATIONS, _related, hard_negatives
from qgnb.zoo import spec
from qgnb.zoo.attributes import (
    AttributeHeads,
    object_centres,
    object_kind,
    patch_masks,
    relation_labels,
)
from qgnb.zoo.batches import draw_batch, scene_pool
from qgnb.zoo.reading import Reading, candidates, pick


def test_patch_masks_take_the_patches_whose_centres_fall_in_the_box():
    # 64 px, patch 8: centres at 4, 12, 20, ... A box x 8..24, y 8..16 holds centres
    # x 12, 20 and y 12: row 1, columns 1 and 2 -> patches 9 and 10.
    masks = patch_masks(torch.tensor([[8, 8, 24, 16], [0, 0, 64, 64]]), 64, 8)
    assert masks[0].nonzero().flatten().tolist() == [9, 10]
    assert int(masks[1].sum()) == 64
    # A box holding no centre (x 40..43, y 5..8): the patch under its centre (41.5, 6.5).
    assert patch_masks(torch.tensor([[40, 5, 43, 8]]), 64, 8)[0].nonzero().flatten().tolist() == [5]
    with pytest.raises(ValueError, match="not a multiple"):
        patch_masks(torch.tensor([[0, 0, 8, 8]]), 60, 8)


def test_relation_labels_agree_with_the_generator():
    pool = scene_pool("train", 60, 3)
    checked = 0
    for meta in pool.metas:
        boxes = torch.tensor([obj["box"] for obj in meta["objects"]])
        n = len(boxes)
        first = torch.tensor([i for i in range(n) for j in range(n) if i != j], dtype=torch.long)
        second = torch.tensor([j for i in range(n) for j in range(n) if i != j], dtype=torch.long)
        labels = relation_labels(boxes, first, second)
        for k, (i, j) in enumerate(zip(first.tolist(), second.tolist(), strict=True)):
            expected = [float(_related(meta["objects"][i]["box"], r, meta["objects"][j]["box"]))
                        for r in RELATIONS]
            assert labels[k].tolist() == expected
            checked += 1
    assert checked > 100


def test_heads_pool_the_mean_of_each_objects_patches():
    # One hidden unit holding the patch index; the shape head's first logit reads it.
    heads = AttributeHeads(1)
    with torch.no_grad():
        for layer in (heads.shape, heads.size, heads.relation):
            layer.weight.zero_()
            layer.bias.zero_()
        heads.shape.weight[0, 0] = 1.0
    states = torch.arange(64, dtype=torch.float32).reshape(1, 64, 1)
    meta = {"objects": [{"shape": "circle", "size": "small", "box": [8, 8, 24, 16]},
                        {"shape": "square", "size": "large", "box": [0, 40, 8, 48]}]}
    losses = heads(states, [meta], 64, 8)
    # Object 0: patches 9, 10 -> mean 9.5 -> logits (9.5, 0, 0, 0, 0), target circle (0).
    # Object 1: patch 40 -> logits (40, 0, ...), target square (1). Size logits are 0: log 2.
    shape_0 = -9.5 + math.log(math.exp(9.5) + 4)
    shape_1 = math.log(math.exp(40.0) + 4)
    expected = (shape_0 + shape_1) / 2 + math.log(2)
    assert losses["attribute"].item() == pytest.approx(expected, rel=1e-5)
    assert losses["shape_accuracy"].item() == 0.5
    # Two ordered pairs, all relation logits 0: binary cross-entropy log 2.
    assert losses["relation"].item() == pytest.approx(math.log(2), rel=1e-6)


def test_object_kinds_are_the_60_colour_shape_size_triples():
    from qgnb.data.shapes import COLOURS, SHAPE_NAMES, SIZES
    kinds = {object_kind({"colour": c, "shape": s, "size": z})
             for c in COLOURS for s in SHAPE_NAMES for z in SIZES}
    assert kinds == set(range(60))


def test_layout_loss_is_the_mean_squared_error_of_each_objects_linear_readout():
    heads = AttributeHeads(8, embed_dim=3)
    features = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0]])
    metas = [
        {"image_size": (64, 64), "objects": [
            {"colour": "red", "shape": "circle", "size": "small", "box": [0, 0, 16, 16]},
            {"colour": "blue", "shape": "square", "size": "large", "box": [32, 16, 64, 48]}]},
        {"image_size": (64, 64), "objects": [
            {"colour": "red", "shape": "circle", "size": "small", "box": [48, 48, 64, 64]},
            # twins: neither is scored, their centre is undefined
            {"colour": "cyan", "shape": "cross", "size": "large", "box": [0, 0, 8, 8]},
            {"colour": "cyan", "shape": "cross", "size": "large", "box": [20, 0, 28, 8]}]},
    ]
    scene, kind, centre = object_centres(metas)
    assert scene.tolist() == [0, 0, 1]
    # centres: (8, 8) -> (-0.75, -0.75); (48, 32) -> (0.5, 0); (56, 56) -> (0.75, 0.75)
    assert centre.tolist() == [[-0.75, -0.75], [0.5, 0.0], [0.75, 0.75]]
    loss = heads.layout_loss(features, metas)
    weight = heads.layout.weight.detach().view(60, 2, 3)
    squared = []
    for s, k, c in zip(scene.tolist(), kind.tolist(), centre.tolist(), strict=True):
        for axis in range(2):
            read = float(weight[k, axis] @ features[s])
            squared.append((read - c[axis]) ** 2)
    assert loss.item() == pytest.approx(sum(squared) / len(squared), rel=1e-5)
    # A readout that holds the answer gives zero loss: the centre is linear in the features.
    with torch.no_grad():
        heads.layout.weight.zero_()
        heads.layout.weight.view(60, 2, 3)[kind[0], :, 0] = torch.tensor([-0.75, -0.75])
        heads.layout.weight.view(60, 2, 3)[kind[1], 0, 0] = 0.5
        # the red circle again (same kind) in scene 1, read from features (0, 2, -1)
        heads.layout.weight.view(60, 2, 3)[kind[2], :, 1] = 0.375
    assert kind[2] == kind[0]
    assert heads.layout_loss(features, metas).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="embed_dim"):
        AttributeHeads(8).layout_loss(features, metas)


def test_layout_heads_leave_the_other_heads_initialisation_unchanged():
    torch.manual_seed(0)
    plain = AttributeHeads(8)
    torch.manual_seed(0)
    with_layout = AttributeHeads(8, embed_dim=4)
    for name, value in plain.state_dict().items():
        assert torch.equal(value, with_layout.state_dict()[name]), name


def test_relation_negatives_change_only_the_relation_and_are_hard_negatives():
    pool = scene_pool("train", 200, 0)
    relational = [k for k, meta in enumerate(pool.metas) if meta["relation"] is not None]
    assert relational
    for k in relational:
        meta = pool.metas[k]
        for negative in pool.relation_negatives[k]:
            assert negative in hard_negatives(meta)
            others = set(negative.split()) ^ set(pool.phrases[k].split())
            assert others <= {w for r in RELATIONS for w in r.split()}
    assert all(not pool.relation_negatives[k] for k in range(len(pool)) if k not in relational)


def test_relation_share_one_draws_relation_negatives_where_there_are_any():
    pool = scene_pool("train", 200, 0)
    batch = draw_batch(pool, 64, seed=0, step=5, relation_share=1.0)
    drawn = 0
    for index, negative in zip(batch.indices, batch.negatives, strict=True):
        if pool.relation_negatives[index] and negative in pool.negatives[index]:
            assert negative in pool.relation_negatives[index]
            drawn += 1
    assert drawn > 0


def test_reading_rule_ties_go_deeper_then_to_all():
    assert pick([(Reading(0, "all"), 0.6), (Reading(1, "all"), 0.5)]) == Reading(0, "all")
    assert pick([(Reading(0, "all"), 0.5), (Reading(1, "cls"), 0.5)]) == Reading(1, "cls")
    assert pick([(Reading(1, "cls"), 0.5), (Reading(1, "all"), 0.5)]) == Reading(1, "all")
    assert pick([(Reading(0), 0.2), (Reading(2), 0.2), (Reading(1), 0.2)]) == Reading(2)
    with pytest.raises(ValueError, match="no candidate"):
        pick([])
    with pytest.raises(ValueError, match="outside"):
        pick([(Reading(0), 1.5)])


def test_candidates_cover_every_layer():
    assert [r.layer for r in candidates("shapes-clip")] == [0, 1, 2]
    large = candidates("shapes-blip-large")
    layers = spec("shapes-blip-large").architecture.text_layers
    assert {r.layer for r in large} == set(range(layers))
    assert Reading(large[-1].layer, "words") not in large
