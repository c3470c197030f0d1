import numpy as np
import pytest
import torch

from neurontune.models.training import train_erm

CONFIG = {"architecture": "small_cnn", "n_classes": 2, "in_channels": 3, "embedding_dim": 8, "width": 4}


def data(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 64)
    images = np.zeros((64, 3, 12, 12), np.uint8)
    images[:, 0] = np.where(y[:, None, None] == 1, 220, 20)  # an easy cue in the red channel
    return images, y


def test_erm_is_deterministic_for_a_seed_and_keeps_the_global_rng():
    images, y = data(0)
    state = torch.random.get_rng_state()
    kwargs = dict(epochs=3, learning_rate=0.01, weight_decay=0.0, batch_size=16, seed=5, device=torch.device("cpu"))
    first, history = train_erm(CONFIG, images, y, images, y, **kwargs)
    second, _ = train_erm(CONFIG, images, y, images, y, **kwargs)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    other, _ = train_erm(CONFIG, images, y, images, y, **{**kwargs, "seed": 6})  # the seed is used, not ignored
    assert not all(torch.equal(tensor, other.state_dict()[name]) for name, tensor in first.state_dict().items())
    assert torch.equal(state, torch.random.get_rng_state())
    assert len(history) == 3 and history[-1]["train_accuracy"] > 0.9


def test_checkpoint_is_the_best_validation_epoch():
    images, y = data(1)
    model, history = train_erm(CONFIG, images, y, images, y, epochs=4, learning_rate=0.01, weight_decay=0.0,
                               batch_size=16, seed=0, device=torch.device("cpu"))
    with torch.inference_mode():
        accuracy = float((model(model.preprocess(images)).argmax(1).numpy() == y).mean())
    assert accuracy == max(row["val_accuracy"] for row in history)


def test_non_finite_loss_stops_with_a_clear_error():
    images, y = data(2)
    with pytest.raises(FloatingPointError, match=r"ERM loss became (nan|inf) in epoch 1; lower the learning rate"):
        train_erm(CONFIG, images, y, images, y, epochs=1, learning_rate=1e30, weight_decay=0.0,
                  batch_size=16, seed=0, device=torch.device("cpu"))
