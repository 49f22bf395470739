"""Claims about what the loss measures (lessons 002 and 004): lower is better, zero only at
certainty, confident mistakes cost the most, the training loss is a mean over examples, and
how the size of a miss reaches the gradient."""

import math

import numpy as np
import pytest

from llmref.spec.harness.tolerances import F64, assert_close


def _logits_for(p_right, V=5, right=0, spread=None):
    """Logits whose softmax gives the right word ``p_right`` and shares the rest as
    ``spread`` (default: equally among the other V - 1 words)."""
    rest = np.full(V - 1, 1.0 / (V - 1)) if spread is None else np.asarray(spread, float)
    p = np.insert(rest / rest.sum() * (1 - p_right), right, p_right)
    return np.log(p)[None]


def _ce(impl, logits, target):
    return float(impl("cross_entropy.forward")(np.asarray(logits, float), np.array([target]))[0])


@pytest.mark.claim("L000-error-signal")
def test_the_learning_signal_is_the_prediction_minus_the_actual_word(impl, claim_figures):
    """The gradient the loss sends back into the logits is softmax(logits) - onehot(actual),
    divided by the number of predictions: the comparison of the prediction with reality.  It
    is large where the model predicted 'sunny' for 'cloudy' and vanishes as the prediction
    approaches the actual word."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 6)) * 2
    actual = np.array([1, 0, 5, 2])
    _, cache = impl("cross_entropy.forward")(logits, actual)
    grad = impl("cross_entropy.backward")(1.0, cache)["logits"]
    probs, _ = impl("softmax.forward")(logits)
    assert_close(grad, (probs - np.eye(6)[actual]) / 4, F64, name="dL/dlogits")
    sunny, cloudy = 0, 1
    wrong = np.array([[6.0, 0.0, 0.0, 0.0, 0.0, 0.0]])     # predicted sunny
    right = np.array([[0.0, 12.0, 0.0, 0.0, 0.0, 0.0]])    # nearly certain of cloudy
    signal = {}
    for name, z in (("predicted_sunny", wrong), ("nearly_certain_cloudy", right)):
        _, c = impl("cross_entropy.forward")(z, np.array([cloudy]))
        signal[name] = float(np.abs(impl("cross_entropy.backward")(1.0, c)["logits"]).sum())
    assert signal["predicted_sunny"] > 1.9 and signal["nearly_certain_cloudy"] < 1e-4
    assert sunny != cloudy
    claim_figures.record(**signal)


@pytest.mark.claim("L002-lower-loss-better")
def test_loss_falls_exactly_as_the_right_words_probability_rises(impl, claim_figures):
    """Cross-entropy of one prediction is -ln p(right word), whatever the other words get:
    strictly decreasing in p, so a lower loss always means a higher probability for the right
    word (p = exp(-loss))."""
    ps = np.linspace(0.01, 0.99, 99)
    rng = np.random.default_rng(0)
    losses = np.array([_ce(impl, _logits_for(p, spread=rng.random(4) + 0.01), 0) for p in ps])
    assert_close(losses, -np.log(ps), F64, name="loss vs -ln p")
    assert np.all(np.diff(losses) < 0)
    claim_figures.record(loss_at_p_050=losses[49], loss_at_p_090=losses[89],
                         loss_at_p_099=losses[98])


@pytest.mark.claim("L002-loss-zero-perfect")
def test_loss_reaches_zero_only_at_certainty(impl, claim_figures):
    """The loss is above 0 for every finite margin of the right word over the others and tends
    to 0 as the margin grows.  Computed as log1p of the other words' share, it stays above 0
    in float64 too (about 4 exp(-gap), far below 1e-16 yet not 0, until exp underflows)."""
    gaps = np.arange(0.0, 60.0, 0.5)
    losses = np.array([_ce(impl, [[g, 0.0, 0.0, 0.0, 0.0]], 0) for g in gaps])
    expected = np.log1p(4 * np.exp(-gaps))
    assert_close(losses, expected, F64, name="loss vs log(1 + 4 exp(-gap))")
    assert np.all(np.diff(losses) <= 0)
    assert np.all(losses > 0) and losses[-1] < 1e-24
    claim_figures.record(loss_at_gap_5=losses[10], loss_at_gap_20=losses[40],
                         loss_at_gap_59_5=losses[-1])


@pytest.mark.claim("L002-confident-wrong")
@pytest.mark.claim("L004-ce-confident-wrong")
@pytest.mark.claim("L004-wrong-costs-more")
def test_confident_wrong_answers_cost_more_than_uncertain_ones(impl, claim_figures):
    """Five words. Certain and right: loss near 0. Uncertain (uniform): ln 5 = 1.61. Confidently
    wrong (99% on a wrong word, 0.25% on the right one): 6.0, and the loss grows without bound
    as the right word's probability goes to 0. Saying 'cat' when the answer is 'dog' costs more
    than saying 'dog'. What is penalised is the low probability of the right word: with the
    right word at 10%, one wrong word at 90% and four wrong words at 22.5% each cost the same."""
    uniform = _ce(impl, np.zeros((1, 5)), 0)
    confident_wrong = _ce(impl, _logits_for(0.0025, spread=[0.99, 0.0025, 0.0025, 0.0025]), 0)
    certain_right = _ce(impl, _logits_for(0.99), 0)
    assert certain_right < uniform < confident_wrong
    assert abs(uniform - math.log(5)) < 1e-12
    ladder = [_ce(impl, _logits_for(10.0 ** -k, spread=[1, 1e-9, 1e-9, 1e-9]), 0)
              for k in range(1, 8)]
    assert np.all(np.diff(ladder) > 2.0)                 # about ln 10 = 2.3 more per decade
    said_cat = [[0.0, 4.0, 0.0, 0.0, 0.0]]               # word 1 = "cat", the answer 0 = "dog"
    said_dog = [[4.0, 0.0, 0.0, 0.0, 0.0]]
    assert _ce(impl, said_cat, 0) > _ce(impl, said_dog, 0) + 3.0
    one_wrong = _ce(impl, _logits_for(0.1, spread=[1.0, 1e-12, 1e-12, 1e-12]), 0)
    spread = _ce(impl, _logits_for(0.1), 0)
    assert abs(one_wrong - spread) < 1e-9
    claim_figures.record(certain_right=certain_right, uniform=uniform,
                         confident_wrong=confident_wrong, p_right_1e_minus_7=ladder[-1],
                         said_cat_answer_dog=_ce(impl, said_cat, 0),
                         said_dog_answer_dog=_ce(impl, said_dog, 0),
                         p_right_10pct_one_wrong_word=one_wrong, p_right_10pct_spread=spread)


@pytest.mark.claim("L002-mean-over-examples")
def test_training_loss_is_the_mean_over_the_examples(impl, claim_figures):
    """The batch loss is the mean of the examples' losses (ignored positions left out), so
    minimising it weighs every training example equally."""
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 4, 7)) * 2
    targets = rng.integers(0, 7, size=(3, 4))
    targets[0, :2] = -100
    batch = float(impl("cross_entropy.forward")(logits, targets)[0])
    keep = targets != -100
    each = [_ce(impl, logits[b, t][None], targets[b, t]) for b, t in zip(*np.nonzero(keep),
                                                                       strict=True)]
    assert_close(batch, np.mean(each), F64, name="batch loss vs mean of example losses")
    claim_figures.record(batch_loss=batch, examples=len(each))


@pytest.mark.claim("L004-bigger-miss")
def test_squared_error_gradient_grows_with_the_miss_cross_entropy_gradient_is_bounded(
        impl, claim_figures):
    """MSE's gradient is 2 (prediction - target) / n: ten times the miss, ten times the push.
    Cross-entropy's gradient on the logits is p - onehot, whose entries stay within [-1, 1]
    however wrong the prediction: at a loss of 50 the push is no larger than at a loss of 5."""
    miss = np.array([0.1, 1.0, 10.0])
    target = np.zeros(3)
    _, cache = impl("mse.forward")(target + miss, target)
    push = impl("mse.backward")(1.0, cache)["pred"]
    assert_close(push, 2 * miss / 3, F64, name="MSE gradient vs 2 miss / n")
    pushes = dict(zip(miss.tolist(), push.tolist(), strict=True))
    ce_push = {}
    for gap in (5.0, 50.0):
        logits = np.array([[0.0, gap, 0.0]])
        loss, cache = impl("cross_entropy.forward")(logits, np.array([0]))
        grad = impl("cross_entropy.backward")(1.0, cache)["logits"]
        ce_push[float(loss)] = float(np.abs(grad).max())
    small, large = sorted(ce_push)
    assert large > 45 and small < 6
    assert max(ce_push.values()) <= 1.0 and ce_push[large] / ce_push[small] < 1.01
    claim_figures.record(mse_push_miss_1=pushes[1.0], mse_push_miss_10=pushes[10.0],
                         ce_loss_small=small, ce_push_small=ce_push[small],
                         ce_loss_large=large, ce_push_large=ce_push[large])
